# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLI := $(BIN)/facenet-mtl
DEMO := demo_data
DATA ?= ../shared/data
REAL ?= data_out/real
RUNS ?= runs
LIMIT ?= 0
REAL_SET ?=
export CUDA_VISIBLE_DEVICES ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test test-min demo demo-data real release bench bench-real bench-predict clean

venv: $(STAMP)
$(STAMP): setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev,serve,tfds,export,keras2]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

# The lower bounds of setup.cfg, proven: each requirement at its lowest series (.ci/min_requirements.py)
# in a separate venv, then the suite's fast part (not @pytest.mark.slow; MIN_TESTS=... narrows it).
VENV_MIN := .venv-min
MIN_TESTS ?= tests
test-min:
	test -x $(VENV_MIN)/bin/python || $(PYTHON) -m venv $(VENV_MIN)
	$(PYTHON) .ci/min_requirements.py setup.cfg dev > $(VENV_MIN)/requirements-min.txt
	$(VENV_MIN)/bin/pip install -q -r $(VENV_MIN)/requirements-min.txt
	$(VENV_MIN)/bin/pip install -q --no-deps -e .
	$(VENV_MIN)/bin/pip freeze | grep -i -E "^(tensorflow|keras|numpy|h5py)==" 
	$(VENV_MIN)/bin/pytest -q -m "not slow" $(MIN_TESTS)

# The whole programme on generated faces: data in native layouts -> TFRecords -> pretrain ->
# finetune (two weightings) -> single-task ablation -> evaluate -> predict -> report.
demo: $(STAMP)
	$(CLI) demo-data $(DEMO)/native
	$(CLI) build-tfrecords wiki --source $(DEMO)/native/wiki_crop --out $(DEMO)/records --image-size 64
	$(CLI) build-tfrecords appa_real --source $(DEMO)/native/appa_real --out $(DEMO)/records --image-size 64
	$(CLI) build-tfrecords fer2013 --source $(DEMO)/native/fer2013/fer2013.csv --out $(DEMO)/records --image-size 64
	$(CLI) build-tfrecords genki4k --source $(DEMO)/native/genki4k --out $(DEMO)/records --image-size 64
	$(CLI) build-tfrecords utkface --source $(DEMO)/native/utkface --out $(DEMO)/records --image-size 64
	$(CLI) run experiments/demo/ --runs-dir runs
	$(CLI) evaluate runs/demo-mtl-w1111/model.h5 --data $(DEMO)/records --datasets appa_real,fer2013,genki4k,utkface
	$(CLI) predict runs/demo-mtl-w1111/model.h5 --no-detect $(DEMO)/native/genki4k/files/file0001.jpg $(DEMO)/native/genki4k/files/file0002.jpg --out runs/demo-predictions
	$(CLI) report runs/demo-pretrain runs/demo-mtl-w1111 runs/demo-mtl-lowgender runs/demo-emotion --out runs/demo-report

# Real faces from ../shared/data (or DATA=...): records, then the configs in experiments/real/,
# then the report. LIMIT=N and REAL_SET="--set train.epochs=1 ..." give the tiny smoke version the
# test suite runs; a rerun skips finished shards and runs, and resumes an interrupted one.
# GENKI-4K photos frame faces at every scale, so its faces are found (mtcnn) and cropped like the
# aligned UTKFace/FER2013 crops; a photo with no face found is kept whole, so no test image is lost.
real: $(STAMP)
	$(CLI) build-tfrecords utkface --source $(DATA)/utkface/UTKFace --out $(REAL) --image-size 64 --limit $(LIMIT)
	$(CLI) build-tfrecords fer2013 --source $(DATA)/fer2013/fer2013_images.zip --out $(REAL) --image-size 64 --limit $(LIMIT)
	$(CLI) build-tfrecords genki4k --source $(DATA)/genki4k --out $(REAL) --image-size 64 --limit $(LIMIT) \
		--option detect=true --no-face keep_full
	$(CLI) run experiments/real/ --runs-dir $(RUNS) --set data.root=$(REAL) $(REAL_SET)
	$(CLI) report $(RUNS)/real-mtl $(RUNS)/real-pretrain $(RUNS)/real-single-* --out $(RUNS)/real --references all

# The model that ships in the package: records of every real source, aligned to one template,
# then experiments/release/ (pretrain -> four-head model -> warm restarts -> the average of the last
# two), then publish-release copies the model
# into facenet_mtl/weights/ and rewrites MODEL_CARD.md from measurements on the test splits.
RELEASE_DATA ?= data_out/release
# The shipped model used FairFace's 40,000-face copy (../shared/DATA.md: FAIRFACE=<its folder>, laid out
# as train/<n>.jpg + fairface_label_train.csv); the 10,000 in $(DATA)/fairface are its first 10,000.
FAIRFACE ?= $(DATA)/fairface
release: $(STAMP)
	$(CLI) build-tfrecords utkface --source $(DATA)/utkface/UTKFace --out $(RELEASE_DATA) --image-size 64
	$(CLI) build-tfrecords fer2013 --source $(DATA)/fer2013/fer2013_images.zip --out $(RELEASE_DATA) --image-size 64
	$(CLI) build-tfrecords celeba --source $(DATA)/celeba --out $(RELEASE_DATA) --image-size 64
	$(CLI) build-tfrecords fairface --source $(FAIRFACE) --out $(RELEASE_DATA) --image-size 64
	$(CLI) build-tfrecords genki4k --source $(DATA)/genki4k --out $(RELEASE_DATA) --image-size 64 \
		--option detect=true --no-face keep_full
	$(CLI) train --config experiments/release/release-pretrain.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) train --config experiments/release/release-mtl.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) train --config experiments/release/release-mtl-more.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) train --config experiments/release/release-mtl-long.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) train --config experiments/release/release-mtl-restart.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) train --config experiments/release/release-mtl-restart2.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) train --config experiments/release/release-mtl-soup.toml --runs-dir $(RUNS) --set data.root=$(RELEASE_DATA)
	$(CLI) publish-release $(RUNS)/release-mtl-soup --data $(RELEASE_DATA) --utkface $(DATA)/utkface/UTKFace

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_input.py
	$(BIN)/python benchmarks/bench_train.py

# The real recipe's train img/s and input-vs-model split (needs the records `make real` builds).
bench-real: $(STAMP)
	$(BIN)/python benchmarks/bench_real.py --config experiments/real/real-mtl.toml --set data.root=$(REAL)

# predict photos/s over 200 real photos, and the server's latency at 1 and 8 clients (needs $(DATA)).
bench-predict: $(STAMP)
	$(BIN)/python benchmarks/bench_predict.py --data $(DATA)
	$(BIN)/python benchmarks/bench_serve.py --data $(DATA)
	$(BIN)/python benchmarks/bench_video.py --data $(DATA)

clean:
	rm -rf $(DEMO) runs data_out

"""`make real` on a tiny slice of the real faces in ../shared/data, so the path cannot rot:
the same Makefile target builds records, runs every config in experiments/real/ for a couple of
steps, and writes RESULTS.md; the MTL model.h5 loads with plain Keras and labels real faces."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.photos import SHARED_DATA as DATA, missing_data

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.skipif(not (DATA / "utkface").is_dir(), reason=missing_data(DATA / "utkface")),
              pytest.mark.skipif(shutil.which("make") is None, reason="needs make")]


def test_make_real_on_a_tiny_slice(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    smoke = ("--set train.epochs=1 --set train.steps_per_epoch=2 --set data.batch_size=8 "
             "--set data.shuffle_buffer=64 --set train.precision=float32")
    done = subprocess.run(
        ["make", "-s", "real", f"DATA={DATA}", f"REAL={tmp_path / 'records'}", f"RUNS={tmp_path / 'runs'}",
         "LIMIT=60", f"REAL_SET={smoke}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = tmp_path / "runs"
    names = {"real-pretrain", "real-mtl", "real-single-age", "real-single-gender", "real-single-emotion",
             "real-single-smile"}
    assert names <= {p.name for p in runs.iterdir()}
    results = (runs / "real" / "RESULTS.md").read_text()
    assert "real-mtl" in results or "MTL" in results
    script = f"""
import keras, numpy as np, cv2, zipfile
model = keras.models.load_model(r"{runs / 'real-mtl' / 'model.h5'}")
size = model.input_shape[1]
face = cv2.imread(sorted(__import__('glob').glob(r"{DATA / 'utkface' / 'UTKFace'}/*.jpg"))[0])[:, :, ::-1]
face = cv2.resize(face, (size, size)).astype("float32")[None]
out = model.predict(face, verbose=0)
assert sorted(out) == ["age", "age_probs", "emotion", "gender", "smile"], sorted(out)
assert 0 <= float(out["age"][0, 0]) <= 100 and abs(float(out["emotion"].sum()) - 1) < 1e-4
print("ok")
"""
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "ok" in check.stdout, check.stderr[-2000:]

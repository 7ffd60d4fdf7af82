"""The `facenet-mtl` command line: thin wrappers over library functions a Python user can call."""
import errno
import functools
import json
import re
import sys
from pathlib import Path

import click

from facenet_mtl.data.schema import DEFAULT_IMAGE_SIZE, MIN_FACE
from facenet_mtl.errors import DataError


class _RefinishOption(click.Option):
    """`--refinish`, whose help names the finish options when help is shown: the trainer's modules
    load then, not when any command (predict, serve) starts."""

    def get_help_record(self, ctx):
        from facenet_mtl.training.rundir import FINISH_KEYS

        self.help = ("Finish a finished run again without training: export, BatchNorm recalibration and "
                     f"evaluation under the config's current finish options ({', '.join(FINISH_KEYS)}).")
        return super().get_help_record(ctx)


# The fix for an operating-system error on a path the user gave, by errno.
OS_FIXES = {
    errno.EACCES: "check the permissions of that path (or its folder), or choose another location",
    errno.EPERM: "check the permissions of that path (or its folder), or choose another location",
    errno.EROFS: "that file system is read-only: choose another location",
    errno.ENOSPC: "free some disk space, or choose another location",
    errno.EDQUOT: "free some disk space (quota exceeded), or choose another location",
    errno.ENOENT: "check that the path exists",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that path is a folder: give a file",
    errno.EEXIST: "that path already exists: remove it or choose another",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.EMFILE: "too many open files: raise `ulimit -n`",
}


def user_errors(fn=None, *, tensorflow_first=True):
    """Expected failures the user can fix: print the message (path, problem, fix) and exit with
    code 2, with no traceback. Those are DataError and ConfigError (bad input, named by the code
    that found it) and an OSError on a named path (permission denied, read-only or full disk).
    Anything else is a bug and keeps its traceback; click's usage errors exit 2 on their own.

    TensorFlow is imported (quietly, `quiet.import_tensorflow`) when the command runs, never for
    `--help`; `tensorflow_first=False` leaves it to the command (predict and serve import it on a
    thread while they read their inputs)."""
    if fn is None:
        return functools.partial(user_errors, tensorflow_first=tensorflow_first)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from facenet_mtl.training.config import ConfigError

        try:
            if tensorflow_first:
                import_tensorflow()
            return fn(*args, **kwargs)
        except (DataError, ConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            if exc.errno not in OS_FIXES:
                raise
            path = "" if exc.filename is None else f"{exc.filename}: " if exc.filename2 is None else \
                f"{exc.filename} -> {exc.filename2}: "
            click.echo(f"error: {path}{exc.strerror}\n  fix: {OS_FIXES[exc.errno]}", err=True)
            sys.exit(2)
        except Exception as exc:
            fix = _tensorflow_file_fix(exc)
            if fix is None:
                raise
            message = re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]$", "", str(exc).strip())  # TF's op wrapping
            click.echo(f"error: {message[:500]}\n  fix: {fix}", err=True)
            sys.exit(2)

    return wrapper


# TensorFlow's own file errors (tf.io, TFRecord writers, TensorBoard, SavedModel) are not OSError:
# the fix for each, by class name.
TF_FILE_FIXES = {
    "ResourceExhaustedError": "free some disk space (or memory), or choose another location",
    "PermissionDeniedError": "check the permissions of that path (or its folder), or choose another location",
    "NotFoundError": "check that the path and its folder exist",
    "AlreadyExistsError": "that path already exists: remove it or choose another",
    "FailedPreconditionError": "check that path: a folder where a file is expected, or a read-only file system",
    "DataLossError": "the file is truncated or damaged: copy or build it again",
}


def _tensorflow_file_fix(exc):
    """The fix for a TensorFlow file error (`tf.errors.OpError` subclasses above), else None."""
    errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    if errors is None or not isinstance(exc, errors.OpError):
        return None
    return TF_FILE_FIXES.get(type(exc).__name__)


def import_tensorflow():
    """TensorFlow, imported with its start-up noise filtered unless `facenet-mtl -v` was given."""
    from facenet_mtl import quiet

    return quiet.import_tensorflow(_verbose())


def _verbose():
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("verbose"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facenet-mtl")
@click.option("-v", "--verbose", is_flag=True, help="Show debug messages and TensorFlow's own start-up output.")
def main(verbose=False):
    """Train one face model for age, gender, emotion and smile, and use it.

    \b
    The spine: native data -> build-tfrecords -> train (pretrain, finetune) -> evaluate/predict.
    Example (the built-in demo data):
      facenet-mtl demo-data demo_data/native
      facenet-mtl build-tfrecords wiki --source demo_data/native/wiki_crop --out demo_data/records
      facenet-mtl train --config experiments/demo/demo-pretrain.toml --runs-dir runs
      facenet-mtl run experiments/demo/ --runs-dir runs   (every config in the folder, in order)
    """
    from facenet_mtl import quiet

    quiet.setup_logging(verbose)  # TensorFlow is imported by the command that needs it (`user_errors`)


@main.command("build-tfrecords")
@click.argument("dataset", required=False)
@click.option("--source", type=click.Path(), help="Folder (or file) with the dataset's native files.")
@click.option("--out", type=click.Path(), default="data_out", show_default=True, help="Records root.")
@click.option("--image-size", default=DEFAULT_IMAGE_SIZE, show_default=True, help="Square face size stored.")
@click.option("--workers", default=0, help="Processes for decode/crop/encode (0: all cores).")
@click.option("--limit", default=0, help="Keep at most N records (smoke runs).")
@click.option("--force", is_flag=True, help="Rebuild even if finished shards exist.")
@click.option("--no-face", type=click.Choice(["skip", "keep_full"]), default="skip", show_default=True,
              help="When detection finds no face: drop the image, or keep the whole image.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Reader option, e.g. min_face_score=2 or age_target=real (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the datasets and the layout each expects.")
@user_errors
def build_tfrecords_cmd(dataset, source, out, image_size, workers, limit, force, no_face, options, list_only):
    """Write DATASET once into sharded TFRecords with a per-task label mask.

    \b
    Example:
      facenet-mtl build-tfrecords fer2013 --source ../shared/data/fer2013/fer2013_images.zip --out data_out
      facenet-mtl build-tfrecords --list
    """
    from facenet_mtl.data.readers import DATASETS, get_dataset

    if list_only or not dataset:
        for name in sorted(DATASETS):
            spec = DATASETS[name]
            click.echo(f"{name}  [{', '.join(spec.tasks)}]\n    {spec.layout}\n")
        return
    from facenet_mtl.data.records import BuildOptions, build_tfrecords

    get_dataset(dataset)
    if not source:
        raise click.UsageError("--source is required")
    reader_options = dict(_parse_option(o) for o in options)
    manifest = build_tfrecords(dataset, source, out, BuildOptions(
        image_size=image_size, workers=workers, limit=limit, force=force, no_face=no_face), reader_options)
    counts = ", ".join(f"{s} {v['count']}" for s, v in manifest["splits"].items())
    notes = "".join(f"; {reason.replace('_', ' ')}: {n}" for reason, n in manifest["notes"].items())
    notes += "".join(f"; {text}" for text in manifest.get("reader_notes", {}).values())
    click.echo(f"{dataset}: {counts}; dropped {manifest['dropped'] or 'nothing'}{notes} -> {Path(out) / dataset}")


def _parse_option(text):
    import tomllib

    key, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"'{text}' is not KEY=VALUE", param_hint="--option")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value


@main.command("demo-data")
@click.argument("out_dir", type=click.Path())
@click.option("--seed", default=0, show_default=True)
@user_errors
def demo_data_cmd(out_dir, seed):
    """Generate the built-in demo face-attribute data in each dataset's native layout.

    \b
    Example:
      facenet-mtl demo-data demo_data/native
    """
    from facenet_mtl.demo.datasets import make_demo_data

    for name, path in make_demo_data(out_dir, seed=seed).items():
        click.echo(f"{name}: {path}")


def _load_cfg(config, overrides, stage=None, init=None, loss_weights=None, epochs=None):
    """The experiment with every command-line value applied, validated once (training/config.py)."""
    from facenet_mtl.training.config import load_config

    overrides = list(overrides)
    if stage:
        overrides.append(f"stage={json.dumps(stage)}")
    if init:
        overrides.append(f"init={json.dumps(init)}")  # a JSON string is a TOML string
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return load_config(config, overrides, loss_weights=loss_weights)


COMMON_TRAIN = [
    click.option("--runs-dir", default="runs", show_default=True, help="Where run directories go."),
    click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
                 help="Override any config field, e.g. train.epochs=3 (repeatable)."),
    click.option("--restart", is_flag=True, help="Discard an existing run directory and start over."),
    click.option("--refinish", is_flag=True, cls=_RefinishOption),
]


def _common(fn):
    for option in reversed(COMMON_TRAIN):
        fn = option(fn)
    return fn


@main.command("train")
@click.option("--config", "config", required=True, type=click.Path(), help="Experiment TOML.")
@click.option("--stage", type=click.Choice(["pretrain", "finetune"]), help="Override the config's stage.")
@click.option("--init", help="Finetune from this experiment name or model path.")
@click.option("--loss-weights", help="Per-task loss weights, e.g. age=1,gender=0.1,emotion=1.")
@click.option("--epochs", type=int, help="Override train.epochs.")
@_common
@user_errors
def train_cmd(config, stage, init, loss_weights, epochs, runs_dir, overrides, restart, refinish):
    """Train one stage of an experiment into RUNS_DIR/<name>/ (resumes if interrupted).

    \b
    Examples:
      facenet-mtl train --stage pretrain --config experiments/study/resnet18-pretrain.toml
      facenet-mtl train --stage finetune --init runs/resnet18-pretrain/model.keras \\
          --config experiments/study/resnet18-mtl-w111.toml --loss-weights age=1,gender=1,emotion=1
    """
    from facenet_mtl.training.trainer import train

    cfg = _load_cfg(config, overrides, stage, init, loss_weights, epochs)
    run_dir = train(cfg, runs_dir, restart=restart, refinish=refinish, verbose=_fit_verbosity())
    _print_run_summary(run_dir)


@main.command("run")
@click.argument("experiments", nargs=-1, required=True, type=click.Path())
@_common
@user_errors
def run_cmd(experiments, runs_dir, overrides, restart, refinish):
    """Run experiment configs in order: skip finished runs, resume interrupted ones.

    EXPERIMENTS are TOML files or folders of them (files starting with _ are bases).

    \b
    Example:
      facenet-mtl run experiments/demo/
    """
    from facenet_mtl.training.trainer import train

    configs = [_load_cfg(path, overrides) for path in _expand_experiments(experiments)]  # all fail fast
    for cfg in _in_dependency_order(configs):
        click.echo(f"== {cfg.name} ({cfg.source})")
        run_dir = train(cfg, runs_dir, restart=restart, refinish=refinish, verbose=_fit_verbosity())
        _print_run_summary(run_dir)


def _fit_verbosity():
    """Keras progress bars on a terminal; one line per epoch in a log file."""
    return 1 if sys.stdout.isatty() else 2


def _in_dependency_order(configs):
    """Each finetune after the experiments it starts from (its `init`, or each of its `average`),
    when they are given too; else as listed."""
    by_name = {cfg.name: cfg for cfg in configs}
    ordered, seen = [], set()

    def visit(cfg, chain=()):
        if cfg.name in seen:
            return
        if cfg.name in chain:
            raise DataError(cfg.source, f"experiments initialise from each other in a loop: {' -> '.join(chain)}")
        for parent in cfg.parents():
            if parent in by_name:
                visit(by_name[parent], chain + (cfg.name,))
        seen.add(cfg.name)
        ordered.append(cfg)

    for cfg in configs:
        visit(cfg)
    return ordered


def _expand_experiments(items):
    paths = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if not p.name.startswith("_"))
            if not found:
                raise DataError(path, "holds no experiment configs (*.toml files not starting with _)",
                                "give a folder of experiment .toml files, or the .toml files themselves")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            from facenet_mtl.training.config import CONFIG_NOT_FOUND_FIX

            raise DataError(path, "experiment config not found", f"give a .toml file or a folder of them; {CONFIG_NOT_FOUND_FIX}")
    return paths


def _print_run_summary(run_dir):
    from facenet_mtl.training.evaluate import format_table

    metrics_path = Path(run_dir) / "metrics.json"
    if not metrics_path.is_file():
        return
    metrics = json.loads(metrics_path.read_text())
    for split, evaluation in metrics["splits"].items():
        click.echo(format_table(evaluation, split))
    click.echo(f"run: {run_dir}")


@main.command("evaluate")
@click.argument("model_path", required=False, type=click.Path())
@click.option("--data", "data_root", required=True, type=click.Path(), help="Records root (build-tfrecords --out).")
@click.option("--datasets", default="", help="Comma-separated datasets (default: every one under --data).")
@click.option("--split", default="test", show_default=True)
@click.option("--by", "by", default="", metavar="GROUPS",
              help="Also figures per group: a comma-separated subset of race,gender,age_band "
                   "(without --datasets: on the datasets that label every one of them).")
@click.option("--json", "json_out", type=click.Path(), help="Write the metrics here as JSON.")
@click.option("--limit", default=0, type=click.IntRange(min=0), help="Examples per dataset (0: all).")
@click.option("--trust-saved-model", is_flag=True, help="Load a SavedModel facenet-mtl did not write (it runs its graph).")
@user_errors
def evaluate_cmd(model_path, data_root, datasets, split, by, json_out, limit, trust_saved_model):
    """Print the results table of MODEL (default: the shipped model) on built TFRecords.

    \b
    Examples:
      facenet-mtl evaluate --data data_out/release --by race,gender,age_band
      facenet-mtl evaluate runs/real-mtl/model.h5 --data data_out --split test
    """
    from facenet_mtl.artifact.loading import load_keras_model
    from facenet_mtl.artifact.spec import spec_of_file
    from facenet_mtl.data.built_dataset import built_dataset_names
    from facenet_mtl.training.evaluate import (GROUPINGS, evaluate_model, format_group_tables, format_table,
                                               grouped_datasets)

    groupings = tuple(g.strip() for g in by.split(",") if g.strip())
    unknown = [g for g in groupings if g not in GROUPINGS]
    if unknown:
        raise click.BadParameter(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPINGS)}",
                                 param_hint="--by")
    if not model_path:
        from facenet_mtl.weights import release_model_path

        model_path = release_model_path()
    model = load_keras_model(model_path, trust_saved_model=trust_saved_model)
    heads = spec_of_file(model_path, model).task_objects()
    names = [d for d in datasets.split(",") if d] or built_dataset_names(data_root) if Path(data_root).is_dir() else []
    if not names:
        raise DataError(data_root, "holds no built datasets (no */manifest.json)", "run facenet-mtl build-tfrecords first")
    if groupings and not datasets:
        names = grouped_datasets(data_root, names, split, groupings)
        if not names:
            raise DataError(data_root, f"no built dataset labels {', '.join(groupings)} in its {split} split",
                            "choose fewer groupings, or name the datasets with --datasets")
        click.echo(f"per-group figures on {', '.join(names)} (the datasets that label {', '.join(groupings)})", err=True)
    evaluation = evaluate_model(model, data_root, names, split, limit=limit, by=groupings, heads=heads)
    click.echo(format_table(evaluation, split, heads))
    if groupings:
        click.echo("\n" + format_group_tables(evaluation, heads))
    if json_out:
        Path(json_out).write_text(json.dumps(evaluation, indent=2))


@main.command("teach")
@click.argument("model_path", type=click.Path())
@click.option("--data", "data_root", required=True, type=click.Path(), help="Records root (build-tfrecords --out).")
@click.option("--datasets", default="", help="Comma-separated datasets (default: every one under --data).")
@click.option("--split", default="train", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="The teacher file to write (.npz).")
@click.option("--trust-saved-model", is_flag=True, help="Load a SavedModel facenet-mtl did not write (it runs its graph).")
@user_errors
def teach_cmd(model_path, data_root, datasets, split, out, trust_saved_model):
    """Write MODEL's outputs on every training face as a teacher file for self-distillation
    (a config's data.teacher; its data.teacher_weight mixes them into the targets).

    \b
    Examples:
      facenet-mtl teach runs/dense-mtl/model.h5 --data data_out/release --out runs/dense-mtl-teacher.npz
    """
    from facenet_mtl.artifact.loading import load_keras_model
    from facenet_mtl.data.built_dataset import built_dataset_names
    from facenet_mtl.training.distillation import write_teacher

    model = load_keras_model(model_path, trust_saved_model=trust_saved_model)
    names = [d for d in datasets.split(",") if d] or (built_dataset_names(data_root) if Path(data_root).is_dir() else [])
    if not names:
        raise DataError(data_root, "holds no built datasets (no */manifest.json)", "run facenet-mtl build-tfrecords first")
    counts = write_teacher(model, model_path, data_root, names, out, split=split,
                           progress=lambda line: click.echo(line, err=True))
    click.echo(f"teacher file: {out} ({sum(counts.values())} faces)")


@main.command("predict")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--model", "model_path", type=click.Path(),
              help="A model (.h5, .keras or SavedModel dir). Default: the model shipped with facenet-mtl.")
@click.option("--out", "out_dir", type=click.Path(), help="Write annotated images and videos into this folder.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "json", "csv"]), default="jsonl", show_default=True,
              help="jsonl: one JSON object per image (or frame) per line; csv: one row per face.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Images (or frames) detected and sent through the model together.")
@click.option("--every", type=click.IntRange(1), default=1, show_default=True,
              help="Videos and camera: predict every Nth frame.")
@click.option("--max-frames", type=click.IntRange(0), default=0, help="Videos and camera: stop after N frames.")
@click.option("--camera", type=int, default=None, help="Read camera N (0: the first) until Ctrl-C or --max-frames.")
@click.option("--track/--no-track", default=True, show_default=True,
              help="Videos and camera: follow each face as a track (an id, labels smoothed, a summary per track).")
@click.option("--no-detect", is_flag=True, help="Each image is already one face crop.")
@click.option("--search-side", type=click.IntRange(64), default=None,
              help="Faster detection: face proposals are searched on a copy with this longer side (e.g. 480), "
                   "then refined at full resolution; faces under 20 px of that copy are missed. Default: full size.")
@click.option("--min-face", type=click.IntRange(12), default=MIN_FACE, show_default=True,
              help="The smallest face searched for, in pixels of the image; smaller faces are missed. Larger is "
                   "faster: on a 640x480 photo 40 takes about 60 % of the detection time of 20, 80 half.")
@click.option("--progress/--no-progress", default=None, help="A progress bar on stderr (default: for 4+ images).")
@click.option("--trust-saved-model", is_flag=True, help="Load a SavedModel facenet-mtl did not write (it runs its graph).")
@user_errors(tensorflow_first=False)
def predict_cmd(inputs, model_path, out_dir, fmt, batch_size, every, max_frames, camera, track, no_detect,
                search_side, min_face, progress, trust_saved_model):
    """Find every face in INPUTS and print its box, the detector's confidence, age, gender,
    emotion and smile, one JSON line per image (or video frame), with the model's id.

    \b
    INPUTS: image files, folders (walked for images), globs, videos (.mp4 .avi .mov .mkv),
    or - to read paths from stdin. The old form `predict MODEL IMAGES...` still works.
    Examples:
      facenet-mtl predict photo.jpg
      facenet-mtl predict photos/ 'more/**/*.png' --out annotated/ --format csv > faces.csv
      facenet-mtl predict clip.mp4 --every 5 --out annotated/
      find . -name '*.jpg' | facenet-mtl predict - --model runs/real-mtl/model.h5
    """
    from facenet_mtl import quiet
    from facenet_mtl.inference.inputs import MODEL_SUFFIXES, expand_inputs, is_model_path
    from facenet_mtl.inference.predictor import check_out_dir, load_in_background

    inputs = list(inputs)
    if inputs and is_model_path(inputs[0]):
        if model_path is not None and Path(inputs[0]).suffix.lower() in MODEL_SUFFIXES:
            raise DataError(inputs[0], f"is a model, and --model {model_path} names one too",
                            "give the model once: --model PATH, or as the first argument")
        if model_path is None:
            model_path = inputs.pop(0)
    if not inputs and camera is None:
        raise DataError("predict", "no images given", "give image files, folders, globs, videos, - (paths on "
                        "stdin) or --camera N, e.g. facenet-mtl predict photo.jpg")
    found = expand_inputs(inputs, sys.stdin if "-" in inputs else None,  # bad paths fail before the model loads
                          exclude=out_dir)  # never the previous run's own outputs
    if out_dir is not None:
        check_out_dir(out_dir)
    for folder, count in found.skipped.items():
        click.echo(f"skipped {count} file(s) in {folder} that are not images", err=True)
    # TensorFlow is imported here, on this thread: imported on the loading thread while this one
    # imports too, TensorFlow 2.16's `import distutils` (setuptools' import hook) deadlocked one
    # run in three. The model and detector then load on a thread while the first images are decoded.
    quiet.import_tensorflow(_verbose())
    loading = load_in_background(model_path, trust_saved_model=trust_saved_model, batch_size=max(64, batch_size),
                                 search_side=search_side, min_face=min_face)
    options = dict(detect=not no_detect, batch_size=batch_size, out_dir=out_dir, every=every,
                   max_frames=max_frames, progress=progress, track=track)
    _write_predictions(loading, found, fmt, camera, options)


def _write_predictions(loading, found, fmt, camera, options):
    """Stream the records to stdout; errors and a summary to stderr; exit 2 if an image was unreadable.
    `loading`: the Future of the predictor (`load_in_background`)."""
    import time

    from facenet_mtl.inference.batch import predict_inputs
    from facenet_mtl.inference.records import RecordWriter
    from facenet_mtl.inference.video import predict_camera

    started = time.time()
    writer = None

    def opened():
        """The writer, made once: a CSV's header names the model's heads, so it waits for the model."""
        nonlocal writer
        if writer is None:
            writer = RecordWriter(sys.stdout, fmt, loading.result().heads if fmt == "csv" else None)
        return writer

    if fmt != "csv":
        opened()
    counts = {"records": 0, "faces": 0, "errors": 0}
    annotated = set()
    if camera is not None:
        camera_out = Path(options["out_dir"]) / f"camera{camera}_annotated.mp4" if options["out_dir"] else None
        records = predict_camera(loading.result(), camera, every=options["every"], detect=options["detect"],
                                 batch_size=1, out_path=camera_out, max_frames=options["max_frames"],
                                 tracker=options["track"])
    else:
        records = predict_inputs(loading, found, **options)
    try:
        for record in records:
            if not counts["records"] and loading.result().warning:
                click.echo(f"warning: {loading.result().warning}", err=True)
            opened().write(record)
            if "track_summary" in record:
                click.echo(track_line(record), err=True)
                continue
            counts["records"] += 1
            counts["faces"] += len(record["faces"])
            if "error" in record:
                counts["errors"] += 1
                click.echo(f"error: {record['error']}", err=True)
            if "annotated" in record:
                annotated.add(record["annotated"])
    finally:
        if writer is None and loading.done() and loading.exception() is None:
            opened()
        if writer is not None:
            writer.close()
    seconds = time.time() - started
    predictor = loading.result()
    click.echo(f"predicted {counts['records']} image(s)/frame(s), {counts['faces']} face(s), in {seconds:.1f}s "
               f"({counts['records'] / max(seconds, 1e-9):.1f}/s) with {predictor.model_id}", err=True)
    if annotated:
        click.echo(f"annotated output: {len(annotated)} file(s) written under {options['out_dir']}", err=True)
    if counts["errors"]:
        click.echo(f"error: {counts['errors']} of {counts['records']} image(s) could not be read (listed above)",
                   err=True)
        sys.exit(2)


def track_line(record):
    """A video's track summary as one line: "clip.mp4 track 1: frames 0-249 (250 faces), age 31.2, male, happy"."""
    summary = dict(record["track_summary"])
    head = (f"{record['path']} track {summary.pop('track')}: frames {summary.pop('first_frame')}-"
            f"{summary.pop('last_frame')} ({summary.pop('faces')} faces)")
    age = summary.pop("age", None)
    return ", ".join([head] + ([f"age {age}"] if age is not None else []) + [str(v) for v in summary.values()])


@main.command("serve")
@click.option("--model", "model_path", type=click.Path(),
              help="A model (.h5, .keras or SavedModel dir). Default: the model shipped with facenet-mtl.")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 answers other machines too.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              callback=lambda ctx, param, value: _upload_limit(value), help="Larger uploads get HTTP 413.")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True,
              help="Batches of concurrent requests that may run at once (two keep two cores busy: one "
                   "batch's Python steps run beside the other's TensorFlow ones).")
@click.option("--search-side", type=click.IntRange(64), default=None,
              help="Faster detection, as for predict: proposals searched on a copy with this longer side.")
@click.option("--min-face", type=click.IntRange(12), default=MIN_FACE, show_default=True,
              help="The smallest face searched for, in pixels of the image, as for predict.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also answer requests whose Host header is NAME (repeatable; * for any). By default only "
                   "localhost, 127.0.0.1, ::1 and --host (with 0.0.0.0: this machine's names) are answered.")
@user_errors
def serve_cmd(model_path, host, port, max_upload_mb, threads, search_side, min_face, allow_hosts):
    """Serve the model over HTTP: POST /v1/predict, GET /v1/model, GET /healthz, and a page at /.

    \b
    Needs the serve extra: pip install -e '.[serve]' in the facenet-mtl source folder.
    Examples:
      facenet-mtl serve                       # the shipped model on http://127.0.0.1:8000/
      facenet-mtl serve --model runs/real-mtl/model.h5 --port 8080
      curl -F image=@photo.jpg http://127.0.0.1:8000/v1/predict
    """
    import socket

    from facenet_mtl.serve import serve

    with socket.socket() as probe:  # a clear message now, not a uvicorn log line after the model loads
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DataError(f"{host}:{port}", f"cannot be listened on ({exc.strerror})",
                            "give another --port, or stop what is using it") from None
    serve(model_path, host=host, port=port, max_upload_bytes=int(max_upload_mb * 1024 * 1024), threads=threads,
          log=lambda line: click.echo(line, err=True), search_side=search_side,
          min_face=min_face, allow_hosts=allow_hosts)


MAX_UPLOAD_MB = 4096  # a photo is never bigger; beyond, the limit is a typo


def _upload_limit(value):
    """--max-upload-mb as a finite number of MB up to `MAX_UPLOAD_MB` (nan, inf, 1e400 are refused)."""
    import math

    if not math.isfinite(value) or value > MAX_UPLOAD_MB:
        raise click.BadParameter(f"{value} is not a size in MB between 0 and {MAX_UPLOAD_MB}, e.g. 10",
                                 param_hint="--max-upload-mb")
    return value


@main.command("publish-release")
@click.argument("run_dir", type=click.Path())
@click.option("--data", "data_root", required=True, type=click.Path(), help="The release records (test splits).")
@click.option("--utkface", "utkface_dir", type=click.Path(), help="UTKFace chips for the photo-path figures.")
@click.option("--command", "command", default="make release", show_default=True,
              help="The command that retrains the model, written into the model card.")
@user_errors
def publish_release_cmd(run_dir, data_root, utkface_dir, command):
    """Ship RUN_DIR's model inside the package and rewrite the model card from measurements.

    \b
    Example (what `make release` runs after training):
      facenet-mtl publish-release runs/release-mtl --data data_out/release --utkface ../shared/data/utkface/UTKFace
    """
    from facenet_mtl.release import CARD, publish_release

    if not (Path(run_dir) / "model.h5").is_file():
        raise DataError(run_dir, "has no model.h5 (the run is not finished)",
                        "finish it first: facenet-mtl train --config experiments/release/release-mtl.toml")
    info = publish_release(run_dir, data_root, utkface_dir, command=command)
    click.echo(json.dumps(info["figures"], indent=2))
    click.echo(f"shipped: facenet_mtl/weights/release.h5 (sha256 {info['sha256'][:12]}...); card: {CARD}")


@main.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", default="runs/report", show_default=True, type=click.Path())
@click.option("--split", default="test", show_default=True)
@click.option("--references", type=click.Choice(["study", "peers", "all", "none"]), default="study",
              show_default=True, help="Published rows to show beside the runs.")
@user_errors
def report_cmd(run_dirs, out_dir, split, references):
    """Regenerate the study's results table from run directories (markdown, CSV, PNG charts).

    \b
    Example:
      facenet-mtl report runs/demo-* --out runs/demo-report
    """
    from facenet_mtl.training.references import PEER_REFERENCES, STUDY_REFERENCES
    from facenet_mtl.training.report import build_report, write_report

    chosen = {"study": STUDY_REFERENCES, "peers": PEER_REFERENCES, "none": [],
              "all": list(STUDY_REFERENCES) + list(PEER_REFERENCES)}[references]
    report = build_report([Path(d) for d in run_dirs], split=split, references=chosen)
    written = write_report(report, out_dir)
    markdown = Path(out_dir) / "RESULTS.md"
    if markdown.is_file():
        click.echo(markdown.read_text())
    click.echo(f"written: {', '.join(str(p) for p in (written or [markdown]))}")


@main.command("export")
@click.argument("model_path", required=False, type=click.Path())
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "litert", "saved_model", "h5", "keras2-h5"]),
              help="onnx, litert (.tflite), saved_model (TF Serving: OUT/1/), h5 (Keras 3.4+), keras2-h5 (tf-keras).")
@click.option("--out", "out", required=True, type=click.Path(), help="The file to write (a folder for saved_model).")
@user_errors
def export_cmd(model_path, fmt, out):
    """Write MODEL (default: the shipped model) in another format, checked against Keras.

    \b
    The written file is run in its own runtime on drawn faces; above 1e-4 max abs difference
    from Keras on any output, it is removed and the command exits 1.
    Examples:
      facenet-mtl export --format onnx --out face.onnx
      facenet-mtl export runs/real-mtl/model.h5 --format saved_model --out serving/face
    """
    from facenet_mtl.artifact.exporting import ExportCheckError, export_model_file
    from facenet_mtl.demo.faces import sample_faces
    from facenet_mtl.weights import release_model_path

    try:
        result = export_model_file(model_path or release_model_path(), fmt, out, samples=sample_faces)
    except ExportCheckError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for name, difference in result.differences.items():
        click.echo(f"  {name:<10} max abs difference {difference:.2e}")
    click.echo(f"{fmt}: {result.path} (checked in {result.runtime} against Keras: max {result.max_difference:.2e})")


if __name__ == "__main__":
    main()

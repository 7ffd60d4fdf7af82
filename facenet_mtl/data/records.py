"""`build-tfrecords`: read a dataset natively, crop and encode its faces in parallel, and write
sharded TFRecords (tensorflow-datasets layout) plus `manifest.json`.

Layout under `OUT/<dataset>/` (`facenet_mtl.data.built_dataset` reads it back; each record's
features are `facenet_mtl.data.record_format`'s):
    manifest.json                          counts per split and label, drops by reason, fingerprint
    1.0.0/<dataset>-<split>.tfrecord-00000-of-00004   the shards (tfds file naming)
    1.0.0/dataset_info.json, features.json tfds metadata: `tfds.builder_from_directory` reads it
    1.0.0/.done/<shard>.json               per-shard stats; a shard without it is rebuilt

Each shard is written to a temporary name and renamed when complete, so an interrupted build
never leaves a shard that is later read, and a rerun skips the finished ones. One build at a
time writes a dataset's folder (`OUT/<dataset>/.lock`, see facenet_mtl.locks). A split whose
every image was dropped is an error naming the drop reasons, so no manifest lists an empty split.
"""
import hashlib
import inspect
import json
import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet_mtl.data import record_format
from facenet_mtl.data.built_dataset import VERSION, dataset_dir, manifest_path, shard_dir
from facenet_mtl.errors import DataError
from facenet_mtl.data.schema import (CLASS_FIELDS, DEFAULT_IMAGE_SIZE, FACE_MARGIN, LABEL_FIELDS, MISSING, SCHEMA_VERSION,
                                     full_labels)
from facenet_mtl.locks import exclusive

log = logging.getLogger(__name__)

NO_FACE_POLICIES = ("skip", "keep_full")
IMAGE_SIZES = (16, 1024)  # the square face stored, in pixels (the model's input is 16..512)
MAX_WORKERS = 256


@dataclass(frozen=True)
class BuildOptions:
    """How to build; every value is checked here, on construction, before any work starts."""

    image_size: int = DEFAULT_IMAGE_SIZE
    workers: int = 0  # 0: all cores
    limit: int = 0  # 0: no limit
    force: bool = False
    shard_size: int = 4096
    margin: float = FACE_MARGIN  # face box margin, as a fraction of the box size
    no_face: str = "skip"  # what to do when detection finds no face
    jpeg_quality: int = 95
    progress: bool = True

    def __post_init__(self):
        low, high = IMAGE_SIZES
        rules = {  # field: (its command-line flag, allowed, check)
            "image_size": ("--image-size", f"a whole number of pixels from {low} to {high}",
                           lambda v: _whole(v) and low <= v <= high),
            "workers": ("--workers", f"a whole number from 0 (all cores) to {MAX_WORKERS}",
                        lambda v: _whole(v) and 0 <= v <= MAX_WORKERS),
            "limit": ("--limit", "a whole number >= 0 (0: no limit)", lambda v: _whole(v) and v >= 0),
            "shard_size": ("shard_size", "a whole number >= 1", lambda v: _whole(v) and v >= 1),
            "margin": ("margin", "a number from 0 to 5", lambda v: isinstance(v, (int, float))
                       and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 5),
            "no_face": ("--no-face", " or ".join(NO_FACE_POLICIES), lambda v: v in NO_FACE_POLICIES),
            "jpeg_quality": ("jpeg_quality", "a whole number from 1 to 100", lambda v: _whole(v) and 1 <= v <= 100),
        }
        for name, (flag, allowed, ok) in rules.items():
            value = getattr(self, name)
            if not ok(value):
                raise DataError(flag if flag == name else f"{flag} ({name})", f"must be {allowed}, got {value!r}",
                                f"give {flag} {allowed.split(' (')[0]}")


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def build_tfrecords(dataset, source, out_dir, options=BuildOptions(), reader_options=None):
    """Build `OUT/<dataset>/` from the native files under `source`; returns the manifest dict."""
    from facenet_mtl.data.readers import get_dataset

    spec = get_dataset(dataset)
    source = Path(source)
    if not source.exists():
        raise DataError(source, "source path does not exist",
                        f"point --source at the {dataset} files; expected layout: {spec.layout}")
    reader_options = dict(reader_options or {})
    if "limit" in reader_options and not (_whole(reader_options["limit"]) and reader_options["limit"] >= 0):
        raise DataError("--option limit", f"must be a whole number >= 0, got {reader_options['limit']!r}",
                        "give --limit N (0: no limit)")
    if options.limit:
        reader_options["limit"] = options.limit
    started = time.time()
    result = _read_source(spec, source, reader_options)
    if not result.records:
        raise DataError(source, f"no usable {dataset} records found (dropped: {dict(result.dropped)})",
                        f"expected layout: {spec.layout}")
    fingerprint = _fingerprint(dataset, result.records, options, reader_options)
    with exclusive(dataset_dir(out_dir, dataset), f"{dataset} records folder"):
        return _build_locked(spec, dataset, source, out_dir, options, reader_options, result, fingerprint,
                             started)


def _build_locked(spec, dataset, source, out_dir, options, reader_options, result, fingerprint, started):
    directory = shard_dir(out_dir, dataset)
    _check_previous_build(out_dir, dataset, fingerprint, options.force)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".done").mkdir(exist_ok=True)
    _remove_unfinished(directory, dataset)

    by_split = {}
    for record in result.records:
        by_split.setdefault(record.split, []).append(record)
    dropped = Counter(result.dropped)
    splits = {}
    workers = options.workers or os.cpu_count() or 1
    with _pool(workers) as pool:
        for split, records in sorted(by_split.items()):
            splits[split] = _write_split(pool, dataset, split, records, directory, options, dropped)
    _refuse_empty_splits(source, dataset, directory, splits, by_split)
    manifest = {
        "dataset": dataset,
        "schema_version": SCHEMA_VERSION,
        "version": VERSION,
        "image_size": options.image_size,
        "source": str(source.resolve()),
        "source_fingerprint": fingerprint,
        "reader_options": reader_options,
        "tasks": list(spec.tasks),
        "splits": {split: {k: v for k, v in stats.items() if k != "dropped"} for split, stats in splits.items()},
        "dropped": dict(sorted(dropped.items())),
        "notes": dict(sum((Counter(s["notes"]) for s in splits.values()), Counter())),
        "reader_notes": dict(result.notes),
        "build_seconds": round(time.time() - started, 2),
    }
    _write_json(manifest_path(out_dir, dataset), manifest)
    _write_tfds_metadata(directory, dataset, splits, options.image_size)
    return manifest


def _refuse_empty_splits(source, dataset, directory, splits, by_split):
    """A split whose every image was dropped: remove its (empty) shards, so a rerun after the
    images are fixed rebuilds them, and raise naming the reasons."""
    empty = [split for split, stats in splits.items() if stats["count"] == 0]
    if not empty:
        return
    for split in empty:
        for path in directory.glob(f"{dataset}-{split}.tfrecord-*"):
            (directory / ".done" / f"{path.name}.json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
    reasons = "; ".join(f"'{split}': all {len(by_split[split])} dropped ("
                        + ", ".join(f"{reason} {n}" for reason, n in sorted(splits[split]["dropped"].items())) + ")"
                        for split in empty)
    every = len(empty) == len(splits)
    problem = f"no {dataset} image could be used: " if every else \
        f"split(s) {', '.join(empty)} of {dataset} would be empty: "
    raise DataError(source, problem + reasons,
                    "the build log (warnings) names each dropped file: repair or re-extract those images, "
                    "then run the same command again" + ("" if every else " (the other splits' shards are kept)"))


def _read_source(spec, source, reader_options):
    """`spec.read(source, **reader_options)`; an option the reader does not take is a DataError
    (a typo in `--option`), not a traceback."""
    parameters = inspect.signature(spec.read).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = [name for name in list(parameters)[1:] if parameters[name].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(reader_options) - set(accepted))
    fix = f"the {spec.name} reader takes: {', '.join(accepted) or 'no options'}"
    if unknown and not takes_any:
        raise DataError(source, f"unknown {spec.name} reader option(s): {', '.join(unknown)}", fix)
    try:
        return spec.read(source, **reader_options)
    except TypeError as exc:  # a reader that forwards **options to another rejected one
        if takes_any and set(reader_options) - {"limit"}:
            raise DataError(source, f"bad {spec.name} reader option ({exc})",
                            "check the --option names against the reader's documentation") from None
        raise
    except ValueError as exc:  # a reader refusing an option's value, e.g. age_target=foo
        if set(reader_options) - {"limit"}:
            raise DataError(source, f"bad {spec.name} reader option value ({exc})", fix) from None
        raise


def _remove_unfinished(directory, dataset):
    """Temporary shards an interrupted build left behind (they were never renamed, so never read)."""
    for path in directory.glob(f"{dataset}-*.tfrecord-*.tmp-*"):
        path.unlink(missing_ok=True)


def _check_previous_build(out_dir, dataset, fingerprint, force):
    directory = shard_dir(out_dir, dataset)
    manifest = manifest_path(out_dir, dataset)
    state_path = directory / ".done" / "fingerprint"
    if force and directory.exists():
        for path in directory.glob(f"{dataset}-*.tfrecord-*"):
            path.unlink()
        for path in (directory / ".done").glob("*"):
            path.unlink()
        manifest.unlink(missing_ok=True)
    elif state_path.is_file() and state_path.read_text().strip() != fingerprint:
        if any((directory / ".done").glob("*.json")):
            raise DataError(directory, "already holds TFRecords built from other source files or options",
                            "add --force to rebuild, or choose another --out")
        # A build that stopped before finishing any shard (bad input, interrupted): nothing to keep.
        manifest.unlink(missing_ok=True)
    directory.joinpath(".done").mkdir(parents=True, exist_ok=True)
    _write_text(state_path, fingerprint)


def _write_split(pool, dataset, split, records, directory, options, dropped):
    from tqdm import tqdm

    num_shards = max(1, math.ceil(len(records) / options.shard_size))
    stats = {"count": 0, "shards": [], "labels": {}, "notes": Counter(), "dropped": Counter()}
    label_counts = {name: Counter() for name in LABEL_FIELDS if LABEL_FIELDS[name] != np.float32}
    ages = []
    bar = tqdm(total=len(records), desc=f"{dataset}/{split}", unit="img", disable=not options.progress)
    for index in range(num_shards):
        name = f"{dataset}-{split}.tfrecord-{index:05d}-of-{num_shards:05d}"
        done_path = directory / ".done" / f"{name}.json"
        chunk = records[index::num_shards]
        if done_path.is_file() and (directory / name).is_file():
            shard = json.loads(done_path.read_text())
            bar.update(len(chunk))
        else:
            shard = _write_shard(pool, chunk, directory / name, options, bar)
            _write_json(done_path, shard)
        stats["count"] += shard["count"]
        stats["shards"].append({"file": name, "count": shard["count"]})
        dropped.update(shard["dropped"])
        stats["dropped"].update(shard["dropped"])
        stats["notes"].update(shard.get("notes", {}))
        for field, counts in shard["labels"].items():
            label_counts[field].update(counts)
        ages.extend(shard["ages"])
    bar.close()
    stats["labels"] = {field: dict(sorted(c.items())) for field, c in label_counts.items()}
    stats["notes"] = dict(sorted(stats["notes"].items()))
    if ages:
        ages = np.asarray(ages, np.float32)
        stats["labels"]["age"] = {"count": int(ages.size), "mean": round(float(ages.mean()), 2),
                                  "min": float(ages.min()), "max": float(ages.max())}
    return stats


def _write_shard(pool, records, path, options, bar=None):
    """Write `records` to `path` through a temporary file renamed when complete; `bar` (tqdm)
    advances by one per image, written or skipped."""
    import tensorflow as tf

    from facenet_mtl.data import process

    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    records = _detect_faces(records, bar)
    shard = {"count": 0, "dropped": Counter(), "notes": Counter(), "labels": {}, "ages": []}
    label_counts = {name: Counter() for name in CLASS_FIELDS}
    jobs = ((r, options.image_size, options.margin, options.no_face, options.jpeg_quality) for r in records)
    try:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record, jpeg, problem in pool.imap(process.encode_record, jobs, chunksize=16):
                if bar is not None:
                    bar.update(1)
                if jpeg is None:
                    reason, detail = problem
                    shard["dropped"][reason] += 1
                    log.warning("skipped %s (%s): %s", record.file_id, reason, detail)
                    continue
                if problem:  # written, with a note (a face not found, the whole image kept)
                    shard["notes"][problem[0]] += 1
                labels = full_labels(record.labels)
                writer.write(record_format.serialize(jpeg, labels, record.source, record.file_id))
                shard["count"] += 1
                for field in label_counts:
                    value = int(labels[field])
                    label_counts[field]["missing" if value == MISSING else str(value)] += 1
                if labels["age"] != MISSING:
                    shard["ages"].append(float(labels["age"]))
    except BaseException:  # interrupted or failed: leave no partial file behind
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    shard["labels"] = {k: dict(v) for k, v in label_counts.items()}
    shard["dropped"] = dict(shard["dropped"])
    shard["notes"] = dict(shard["notes"])
    return shard


def _detect_faces(records, bar=None, batch=64):
    """Records that ask for detection, with their face found in batches (`detect_batch`, several
    times faster than one image at a time): the largest face's landmarks become the record's
    `framing` (fractions of the image) with `face_found=True`, else `face_found=False`. An image
    that cannot be read is left as it is, for `encode_record` to count."""
    import dataclasses

    from facenet_mtl.data import images
    from facenet_mtl.data.faces import FaceDetector, landmark_array

    wanted = [i for i, r in enumerate(records) if r.detect and r.box is None and r.face_found is None]
    if not wanted:
        return records
    detector, out = FaceDetector(), list(records)
    if bar is not None:
        bar.set_postfix_str("detecting faces")
    for start in range(0, len(wanted), batch):
        loaded = {}
        for i in wanted[start:start + batch]:
            try:
                loaded[i] = images.load_rgb(records[i].image)
            except (images.CorruptImageError, OSError):
                continue
        for i, found in zip(loaded, detector.detect_batch(list(loaded.values()))):
            height, width = loaded[i].shape[:2]
            points = landmark_array(found[0]) if found else None
            if points is None:
                out[i] = dataclasses.replace(records[i], detect=False, face_found=False)
            else:
                framing = tuple((float(x) / width, float(y) / height) for x, y in points)
                out[i] = dataclasses.replace(records[i], detect=False, framing=framing, face_found=True)
    if bar is not None:
        bar.set_postfix_str("")
    return out


def _pool(workers):
    """Worker processes for the per-image work, or this process itself for `workers=1`."""
    if workers <= 1:
        return _InProcess()
    # spawn: workers must not inherit TensorFlow's threads from the parent (fork + threads hangs).
    context = multiprocessing.get_context("spawn")
    from facenet_mtl.data import process

    return context.Pool(workers, initializer=process.init_worker)


class _InProcess:
    """The part of `multiprocessing.Pool` the build uses, run in the calling process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def imap(self, function, jobs, chunksize=1):
        return map(function, jobs)


def _fingerprint(dataset, records, options, reader_options):
    digest = hashlib.sha256()
    digest.update(json.dumps([dataset, SCHEMA_VERSION, options.image_size, options.margin,
                              options.no_face, options.shard_size, sorted(map(str, reader_options.items()))]).encode())
    for r in records:
        digest.update(f"{r.split}|{r.file_id}|{sorted(r.labels.items())}|{r.box}|{r.detect}|{r.framing}".encode())
    return digest.hexdigest()[:16]


def _write_json(path, data):
    _write_text(path, json.dumps(data, indent=2, default=_json_default))


def _write_text(path, text):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


def _write_tfds_metadata(directory, dataset, splits, image_size):
    """Let `tfds.builder_from_directory(OUT/<dataset>/1.0.0)` read the shards in user code."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # an extra (pip install -e ".[tfds]"): the records stand alone without it
        log.info("tensorflow-datasets is not installed: no tfds metadata for %s", dataset)
        return
    try:
        split_infos = [
            tfds.core.SplitInfo(name=split, shard_lengths=[s["count"] for s in info["shards"]], num_bytes=0,
                                filename_template=tfds.core.ShardedFileTemplate(
                                    data_dir=str(directory), template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                                    dataset_name=dataset, split=split, filetype_suffix="tfrecord"))
            for split, info in splits.items()]
        tfds.folder_dataset.write_metadata(
            data_dir=str(directory), features=record_format.tfds_features(image_size),
            split_infos=split_infos, filename_template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
            description=f"facenet-mtl face records of {dataset} (schema v{SCHEMA_VERSION})", check_data=False)
    except Exception as exc:  # metadata is a convenience for tfds users; the records stand alone
        log.warning("could not write tensorflow-datasets metadata for %s: %s", dataset, exc)

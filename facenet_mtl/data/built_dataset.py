"""A dataset `build-tfrecords` wrote: one object for its folder, its manifest and its shards.

    OUT/<name>/manifest.json                         counts per split and label, drops, fingerprint
    OUT/<name>/1.0.0/<name>-<split>.tfrecord-00000-of-00004   the shards (tfds file naming)
    OUT/<name>/1.0.0/.done/<shard>.json              a shard without it is unfinished, never read

`BuiltDataset.open(root, name)` reads the manifest once (a DataError naming the build command
when there is none); the pipeline, evaluation and training ask the object, not the files.

>>> import json, tempfile
>>> root = tempfile.mkdtemp()
>>> manifest_path(root, "utkface").parent.mkdir()
>>> _ = manifest_path(root, "utkface").write_text(json.dumps({"splits": {"train": {"count": 3}}}))
>>> built = BuiltDataset.open(root, "utkface")
>>> built.size("train"), built.size("test"), built_dataset_names(root)
(3, 0, ['utkface'])
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

from facenet_mtl.errors import DataError
from facenet_mtl.data.record_format import RECORD_FEATURES

VERSION = "1.0.0"  # the tfds version folder the shards sit in
MANIFEST = "manifest.json"


def dataset_dir(root, name):
    return Path(root) / name


def shard_dir(root, name):
    return dataset_dir(root, name) / VERSION


def manifest_path(root, name):
    return dataset_dir(root, name) / MANIFEST


def shard_files(root, name, split):
    """The finished shard files of one split (an empty list if the split was not built)."""
    directory = shard_dir(root, name)
    done = directory / ".done"
    files = sorted(directory.glob(f"{name}-{split}.tfrecord-*-of-*"))
    return [f for f in files if (done / f"{f.name}.json").is_file()]


def built_dataset_names(root):
    """The names of the datasets built under `root` (folders holding a manifest), sorted."""
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []


@dataclass(frozen=True)
class BuiltDataset:
    """One built dataset: `root`, `name` and its `manifest` (read once, by `open`)."""

    root: Path
    name: str
    manifest: dict = field(repr=False)

    @classmethod
    def open(cls, root, name):
        path = manifest_path(root, name)
        if not path.is_file():
            raise DataError(path, f"no TFRecords manifest for dataset '{name}'",
                            f"run: facenet-mtl build-tfrecords {name} --source <its folder> --out {root}")
        return cls(Path(root), name, json.loads(path.read_text()))

    @property
    def directory(self):
        return dataset_dir(self.root, self.name)

    @property
    def splits(self):
        """{split: its stats (count, shards, labels, notes)} as the build recorded them."""
        return self.manifest["splits"]

    @property
    def features(self):
        """The features of every record (`record_format.RECORD_FEATURES`)."""
        return RECORD_FEATURES

    def size(self, split):
        """The number of records of `split` (0 if it was not built)."""
        return int(self.splits.get(split, {}).get("count", 0))

    def shard_files(self, split):
        return shard_files(self.root, self.name, split)

    def built_splits(self):
        """The built splits, for error messages: "train, valid, test" or "none"."""
        return ", ".join(self.splits) or "none"

"""What every dataset reader returns, and the registry entry that describes a dataset."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from facenet_mtl.registry import Registry


@dataclass
class ReadResult:
    """Records that passed cleaning, how many were dropped by each rule, and the reader's notes
    for the manifest (e.g. how a split was made when the official one is missing)."""

    records: list = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    notes: dict = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its reader, the on-disk layout it expects, and what it labels.

    `read(source_dir, **options) -> ReadResult`; options are reader-specific keywords
    (cleaning thresholds, label variants) with defaults, all documented in the reader.
    """

    name: str
    read: Callable
    layout: str  # one paragraph: the files expected under --source
    tasks: tuple  # the label fields it carries, e.g. ("age", "gender")
    citation: str = ""


DATASETS = Registry("dataset")  # filled as the reader modules are imported (`facenet_mtl.data.readers`)


def register(spec: DatasetSpec) -> DatasetSpec:
    """Register `spec` under its name (a reader module calls this on import)."""
    return DATASETS.add(spec.name, spec)


def get_dataset(name: str) -> DatasetSpec:
    from facenet_mtl.errors import DataError

    if name not in DATASETS:
        raise DataError(name, "unknown dataset", f"choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]

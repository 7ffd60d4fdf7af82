"""Native-format readers, one module per dataset, and the dataset registry.

The registry fills on import, the way the backbone registry does (`facenet_mtl.models.backbones`):
each reader module registers its dataset(s) when imported, and this package imports them all.

>>> from facenet_mtl.data.readers import DATASETS, get_dataset
>>> "utkface" in DATASETS and get_dataset("fer2013").tasks
('emotion',)
"""
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult

DATASETS = {}


def register(spec):
    """Register `spec` under its name (a reader module calls this on import)."""
    if spec.name in DATASETS:
        raise ValueError(f"dataset '{spec.name}' is already registered")
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name):
    from facenet_mtl.errors import DataError

    if name not in DATASETS:
        raise DataError(name, "unknown dataset", f"choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


# Importing the modules registers them; they import the names above, so these come last.
from facenet_mtl.data.readers import (  # noqa: E402,F401
    appa_real,
    celeba,
    fairface,
    fer2013,
    genki4k,
    imdb_wiki,
    utkface,
)

__all__ = ["DATASETS", "DatasetSpec", "ReadResult", "get_dataset", "register"]

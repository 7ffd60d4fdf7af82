"""Native-format readers, one module per dataset, and the dataset registry."""
from facenet_mtl.data.readers.base import DatasetSpec, ReadResult

DATASETS = {}


def register(spec):
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name):
    from facenet_mtl.data.errors import DataError

    _load_all()
    if name not in DATASETS:
        raise DataError(name, "unknown dataset", f"choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def _load_all():
    # Importing a reader module registers its dataset(s).
    from facenet_mtl.data.readers import (  # noqa: F401
        appa_real,
        celeba,
        fairface,
        fer2013,
        genki4k,
        imdb_wiki,
        utkface,
    )


__all__ = ["DATASETS", "DatasetSpec", "ReadResult", "get_dataset", "register"]

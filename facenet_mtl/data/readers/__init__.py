"""Native-format readers, one module per dataset, and the dataset registry.

The registry (`base.DATASETS`, a `facenet_mtl.registry.Registry`) fills on import, the way the
backbone registry does: each reader module registers its dataset(s) with `base.register` when
imported, and this package imports them all.

>>> from facenet_mtl.data.readers import DATASETS, get_dataset
>>> "utkface" in DATASETS and get_dataset("fer2013").tasks
('emotion',)
"""
from facenet_mtl.data.readers.base import DATASETS, DatasetSpec, ReadResult, get_dataset, register

# Importing the modules registers them (each calls `base.register`).
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

import pytest

from facenet_mtl.data.errors import DataError
from facenet_mtl.data.readers import DATASETS, get_dataset
from facenet_mtl.data.schema import LABEL_FIELDS

NATIVE = ["imdb", "wiki", "appa_real", "chalearn_lap_2016", "fer2013", "genki4k", "smile_folders", "celeba",
          "utkface"]


@pytest.mark.parametrize("name", NATIVE)
def test_every_native_dataset_is_registered_and_described(name, tmp_path):
    spec = get_dataset(name)
    assert spec.name == name and DATASETS[name] is spec
    assert len(spec.layout) > 40 and set(spec.tasks) <= set(LABEL_FIELDS)
    assert name == "smile_folders" or "@" in spec.citation
    with pytest.raises(DataError, match="source path not found"):
        spec.read(tmp_path / "nowhere")

import pytest

from facenet_mtl.errors import DataError
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


def test_importing_the_package_registers_every_dataset():
    # One registry style (as the backbones'): importing the package fills it, no extra call.
    import json
    import subprocess
    import sys

    names = subprocess.run([sys.executable, "-c", "import json; from facenet_mtl.data.readers import DATASETS; "
                            "print(json.dumps(sorted(DATASETS)))"], capture_output=True, text=True, check=True)
    assert set(json.loads(names.stdout.strip().splitlines()[-1])) == set(NATIVE) | {"fairface"}
    assert set(DATASETS) == set(NATIVE) | {"fairface"}


def test_a_name_registered_twice_is_refused():
    from facenet_mtl.data.readers import register

    with pytest.raises(ValueError, match="already registered"):
        register(DATASETS["utkface"])

"""One value, one owner: the records' image size (their manifest's) must be the model's input
size; the trainer says so before it trains, naming both and the fix."""
import pytest

from facenet_mtl.training import trainer
from facenet_mtl.training.config import ConfigError
from tests.training.conftest import IMAGE_SIZE


def test_records_of_another_size_than_the_model_are_refused_naming_both(make_config, tmp_path):
    cfg = make_config("sizes", model={"input_size": IMAGE_SIZE * 2})
    with pytest.raises(ConfigError, match="model.input_size") as error:
        trainer.train(cfg, tmp_path, verbose=0)
    message = str(error.value)
    assert f"input is {IMAGE_SIZE * 2} px" in message and "records under" in message and f"are {IMAGE_SIZE} px" in message
    assert f"--image-size {IMAGE_SIZE * 2}" in message and f"model.input_size = {IMAGE_SIZE}" in message
    assert not list(tmp_path.rglob("model.h5"))  # nothing was trained


def test_records_of_the_models_size_pass_the_check(make_config):
    cfg = make_config("sizes-ok")
    from facenet_mtl.data.built_dataset import BuiltDataset

    built = {name: BuiltDataset.open(cfg.data.root, name) for name in cfg.data.datasets}
    assert {b.manifest["image_size"] for b in built.values()} == {IMAGE_SIZE}
    trainer.check_image_size(cfg, built)  # no error

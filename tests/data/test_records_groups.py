"""Age groups and race through the records and the input: FairFace built, read and fed."""
import numpy as np

from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.data.pipeline import read_split, to_model_inputs
from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.data.schema import MISSING, RACES
from facenet_mtl.demo.native_layouts import write_fairface


def test_fairface_records_carry_bounds_and_race_and_train_the_bins_only(tmp_path, image):
    rows = [("20-29", "Male", "East Asian"), ("more than 70", "Female", "Black")] * 10
    write_fairface(tmp_path / "src", [{"image": image(56, 56, seed=i), "age": a, "gender": g, "race": r}
                                      for i, (a, g, r) in enumerate(rows)])
    manifest = build_tfrecords("fairface", tmp_path / "src", tmp_path / "out",
                               BuildOptions(image_size=32, workers=1, progress=False))
    assert sum(s["count"] for s in manifest["splits"].values()) == 20
    assert manifest["notes"] == {"aligned_by_source_framing": 20}
    split = max(manifest["splits"], key=lambda s: manifest["splits"][s]["count"])
    examples = list(read_split(BuiltDataset.open(tmp_path / "out", "fairface"), split, 32, cache=False))
    first = examples[0]
    assert float(first["age"]) == MISSING and {float(first["age_min"]), float(first["age_max"])} <= {20.0, 29.0, 70.0, 100.0}
    assert int(first["race"]) in (RACES.index("east_asian"), RACES.index("black"))
    _, labels, weights = to_model_inputs(first, ("age", "age_probs", "gender"))
    assert float(weights["age"]) == 0.0 and float(weights["age_probs"]) == 1.0 and float(weights["gender"]) == 1.0
    low, high = np.asarray(labels["age_probs"])[2:]
    assert (low, high) in ((20.0, 29.0), (70.0, 100.0))

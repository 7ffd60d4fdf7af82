"""Group-balanced sampling: the shares it plans, and the shares a training stream then draws."""
import numpy as np
import pytest

from facenet_mtl.data import balance
from facenet_mtl.data.built_dataset import BuiltDataset
from facenet_mtl.data.pipeline import InputSpec, balancing_filter, read_labels, read_split
from facenet_mtl.data.records import BuildOptions, build_tfrecords
from facenet_mtl.data.schema import AGE_BANDS, RACES
from facenet_mtl.demo.native_layouts import write_fairface


def _marginal(shares, axis, value):
    return sum(s for cell, s in shares.items() if cell[axis] == value)


def test_equal_shares_per_grouping_when_no_cap_binds():
    counts = {(0, 0): 600, (0, 1): 100, (1, 0): 200, (1, 1): 40, (2, 0): 50, (2, 1): 10}
    shares = balance.balanced_shares(counts, power=0.0, max_repeat=1000.0)
    assert sum(shares.values()) == pytest.approx(1.0)
    for race in (0, 1, 2):
        assert _marginal(shares, 0, race) == pytest.approx(1 / 3, abs=1e-3)
    for band in (0, 1):
        assert _marginal(shares, 1, band) == pytest.approx(1 / 2, abs=1e-3)


def test_power_one_keeps_the_natural_shares():
    counts = {(0, 0): 600, (0, 1): 100, (1, 0): 200, (1, 1): 40}
    shares = balance.balanced_shares(counts, power=1.0, max_repeat=1000.0)
    for cell, n in counts.items():
        assert shares[cell] == pytest.approx(n / 940, rel=1e-6)


def test_no_cell_is_repeated_beyond_the_cap_and_rare_groups_still_gain():
    counts = {(0, 0): 5000, (0, 1): 300, (1, 0): 400, (1, 1): 12}
    shares = balance.balanced_shares(counts, power=0.0, max_repeat=3.0)
    total = sum(counts.values())
    repeats = {cell: shares[cell] / (n / total) for cell, n in counts.items()}
    assert max(repeats.values()) == pytest.approx(3.0, rel=1e-6)
    assert all(r <= 3.0 + 1e-9 for r in repeats.values())
    assert _marginal(shares, 0, 1) > 412 / total and _marginal(shares, 1, 1) > 312 / total


def test_a_face_of_unknown_group_keeps_its_natural_share():
    counts = {(-1, 0): 100, (0, 0): 700, (1, 0): 200}
    shares = balance.balanced_shares(counts, power=0.0, max_repeat=10.0)
    assert shares[(-1, 0)] == pytest.approx(0.1, rel=1e-6)
    assert shares[(0, 0)] == pytest.approx(shares[(1, 0)], rel=1e-3)


def test_age_bands_of_years_and_of_fairface_groups():
    missing = -1.0
    labels = {"age": np.array([5, 15, 30, 45, 70, missing, missing, missing], np.float32),
              "age_min": np.array([missing] * 5 + [60, 3, missing], np.float32),
              "age_max": np.array([missing] * 5 + [69, 9, missing], np.float32),
              "race": np.array([0] * 8)}
    assert balance.group_values(labels, "age_band").tolist() == [0, 1, 2, 3, 4, 4, 0, -1]
    assert [b[0] for b in AGE_BANDS][4] == "60+"


def test_a_balanced_stream_draws_the_planned_shares(tmp_path, image):
    """FairFace-layout records where black faces are 1 in 10 and 60+ faces 1 in 5: drawn from
    the balanced training stream, both come out near their planned share."""
    rows = ([("20-29", "Male", "White")] * 32 + [("60-69", "Female", "White")] * 8
            + [("20-29", "Female", "Black")] * 3 + [("60-69", "Male", "Black")] * 1)
    write_fairface(tmp_path / "src", [{"image": image(40, 40, seed=i), "age": a, "gender": g, "race": r}
                                      for i, (a, g, r) in enumerate(rows)])
    build_tfrecords("fairface", tmp_path / "src", tmp_path / "out", BuildOptions(image_size=16, workers=1, progress=False))
    built = BuiltDataset.open(tmp_path / "out", "fairface")
    split = max(built.splits, key=built.size)
    spec = InputSpec(root=str(tmp_path / "out"), datasets=("fairface",), image_size=16,
                     balance_by=("race", "age_band"), balance_power=0.0, balance_max_repeat=4.0)
    counts = balance.cell_counts(read_labels(built, split), spec.balance_by)
    planned = balance.balanced_shares(counts, 0.0, 4.0)
    stream = read_split(built, split, 16).shuffle(64, seed=1).repeat()
    drawn = stream.filter(balancing_filter(spec, built, split, seed=5)).take(4000)
    races = np.array([int(example["race"]) for example in drawn])
    black = RACES.index("black")
    planned_black = _marginal(planned, 0, black)
    natural_black = sum(n for cell, n in counts.items() if cell[0] == black) / sum(counts.values())
    assert planned_black > 2 * natural_black
    assert np.mean(races == black) == pytest.approx(planned_black, abs=0.03)


def test_a_dataset_without_race_is_not_filtered(tmp_path):
    class NoRace:
        name = "fer2013"
        manifest = {"tasks": ["emotion"]}
        splits = {"train": {"labels": {"race": {"missing": 10}}}}

    spec = InputSpec(root=str(tmp_path), datasets=("fer2013",), balance_by=("race", "age_band"))
    assert balancing_filter(spec, NoRace(), "train", seed=1) is None


def test_the_config_names_a_grouping_it_cannot_balance():
    from facenet_mtl.training.config import ConfigError, parse_config

    raw = {"name": "x", "model": {"backbone": "compact", "tasks": ["age"]}, "data": {"balance_by": ["hair"]}}
    with pytest.raises(ConfigError, match=r"data\.balance_by.*'hair' is not one of race, age_band"):
        parse_config(raw)
    raw["data"] = {"balance_by": ["race"], "balance_power": 2.0}
    with pytest.raises(ConfigError, match=r"data\.balance_power"):
        parse_config(raw)

"""The generated demo data: deterministic, native layouts that the real readers read, labels
that are visible in the pixels."""
import numpy as np

from facenet_mtl.data.demo import make_demo_data
from facenet_mtl.data.demo_faces import draw_face
from facenet_mtl.data.readers import get_dataset


def test_demo_data_is_deterministic_and_read_by_the_real_readers(tmp_path):
    sizes = {"wiki": 12, "appa_real": 10, "fer2013": 20, "genki4k": 8, "utkface": 9}
    paths = make_demo_data(tmp_path / "a", seed=3, sizes=sizes)
    again = make_demo_data(tmp_path / "b", seed=3, sizes={"utkface": 9})
    assert sorted(p.name for p in paths["utkface"].iterdir()) == sorted(p.name for p in again["utkface"].iterdir())
    for name, n in sizes.items():
        result = get_dataset(name).read(paths[name])
        assert len(result.records) + sum(result.dropped.values()) == n, name
    fer = get_dataset("fer2013").read(paths["fer2013"])
    assert {r.split for r in fer.records} >= {"test", "private_test"}


def test_labels_are_visible_in_the_pixels():
    # Same seed = same pose, lighting and noise: the difference is the label's cue alone.
    def paired(seed, **labels):
        return draw_face(rng=np.random.default_rng(seed), size=64, **labels).astype(float)

    smile_diff = np.mean([np.abs(paired(i, age=30, gender=1, emotion=6, smile=1) -
                                 paired(i, age=30, gender=1, emotion=6, smile=0)) for i in range(10)], axis=0)
    lower, upper = smile_diff[40:].mean(), smile_diff[:28].mean()
    assert lower > 0.5 and lower > 3 * upper  # the mouth changes, not the eyes
    age_diff = np.mean([np.abs(paired(i, age=85, gender=0, emotion=6, smile=0) -
                               paired(i, age=20, gender=0, emotion=6, smile=0)) for i in range(10)])
    assert age_diff > 2.0
    assert np.array_equal(paired(5, age=30, gender=0, emotion=3, smile=1),
                          paired(5, age=30, gender=0, emotion=3, smile=1))

"""The generated demo data: deterministic, native layouts that the real readers read, labels
that are visible in the pixels."""
import numpy as np
import pytest

from facenet_mtl.data.readers import get_dataset
from facenet_mtl.data.schema import EMOTIONS
from facenet_mtl.demo.datasets import make_demo_data
from facenet_mtl.demo.faces import HAPPY, draw_face, draw_scene


def test_demo_data_is_deterministic_and_read_by_the_real_readers(tmp_path):
    sizes = {"wiki": 12, "appa_real": 10, "fer2013": 20, "genki4k": 8, "utkface": 9}
    paths = make_demo_data(tmp_path / "a", seed=3, sizes=sizes)
    again = make_demo_data(tmp_path / "b", seed=3, sizes={"utkface": 9})
    assert sorted(p.name for p in paths["utkface"].iterdir()) == sorted(p.name for p in again["utkface"].iterdir())
    for name, n in sizes.items():
        result = get_dataset(name).read(paths[name])
        assert len(result.records) == n and not result.dropped, (name, result.dropped)
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


def test_every_emotion_is_drawn_differently():
    faces = [draw_face(30, 1, e, int(e == HAPPY), np.random.default_rng(7), size=64).astype(float)
             for e in range(len(EMOTIONS))]
    pairwise = [np.abs(a - b).mean() for i, a in enumerate(faces) for b in faces[i + 1:]]
    assert min(pairwise) > 0.5


def test_a_scene_places_the_face_box_and_happy_faces_smile():
    image, box = draw_scene(40, 0, 6, 0, np.random.default_rng(0), (160, 140), face_size=60, centre=(70, 80))
    assert image.shape == (160, 140, 3) and image.dtype == np.uint8
    x1, y1, x2, y2 = box
    assert (x1 + x2) / 2 == pytest.approx(70, abs=1) and (y1 + y2) / 2 == pytest.approx(80, abs=1)
    assert 0.85 * 60 <= x2 - x1 <= 1.15 * 60 and x2 - x1 == y2 - y1
    with pytest.raises(ValueError, match="happy"):
        draw_face(30, 0, HAPPY, 0, np.random.default_rng(0))

"""Faces on video as tracks (`FaceTracker`): ids that follow moving faces, labels that do not
flicker, one summary per track."""
import pytest

from facenet_mtl.inference.tracks import FaceTracker


def face(box, age=30.0, male=0.9, happy=0.6, smile=0.7):
    """A face result as `FacePredictor` gives it; `male`, `smile`: probabilities of that class."""
    emotions = {"angry": 0.0, "disgust": 0.0, "fear": 0.0, "happy": happy, "sad": 0.0, "surprise": 0.0,
                "neutral": round(1 - happy, 4)}
    return {"box": list(box), "confidence": 0.99, "age": age,
            "gender": {"label": "male", "probability": male} if male >= 0.5 else
            {"label": "female", "probability": round(1 - male, 4)},
            "emotion": {"label": max(emotions, key=emotions.get), "probabilities": emotions},
            "smile": {"label": "smile", "probability": smile} if smile >= 0.5 else
            {"label": "no_smile", "probability": round(1 - smile, 4)}}


def test_two_faces_keep_their_ids_while_they_move_and_pass_close():
    tracker = FaceTracker(fps=10)
    ids = []
    for frame in range(30):  # A walks right 12 px a frame, B stands; A passes just above B
        a = face((12 * frame, 40, 12 * frame + 80, 120))
        b = face((200, 130, 280, 210))
        faces = [b, a] if frame % 2 else [a, b]  # the detector's order changes from frame to frame
        tracked = tracker.update(frame, faces)
        ids.append({("a" if f["box"] == a["box"] else "b"): f["track"] for f in tracked})
    assert all(i == ids[0] for i in ids) and ids[0]["a"] != ids[0]["b"]


def test_a_fast_face_is_followed_by_its_motion_and_a_lost_one_comes_back_new():
    tracker = FaceTracker(fps=10, max_gap_s=0.5)
    # 40 px a frame on an 80-px box: IoU with the last box is 1/3, with the moved-on box 1
    tracks = [tracker.update(frame, [face((40 * frame, 0, 40 * frame + 80, 80))])[0]["track"] for frame in range(8)]
    assert tracks == [1] * 8
    assert tracker.update(20, [face((320, 0, 400, 80))])[0]["track"] == 2  # gone for 1.2 s: a new track


def test_labels_are_smoothed_over_the_track_and_summarised():
    tracker = FaceTracker(fps=25, window=8)
    raw, smoothed = [], []
    for frame in range(50):  # a steady face whose gender and smile hover around 0.5
        wobble = 0.08 if frame % 2 else -0.08
        f = face((100, 100, 200, 200), age=30 + (5 if frame % 2 else -5), male=0.55 + wobble, smile=0.45 - wobble,
                 happy=0.45 + wobble)
        raw.append(f)
        smoothed.append(tracker.update(frame, [f])[0])

    def changes(faces, task):
        labels = [f[task]["label"] for f in faces]
        return sum(a != b for a, b in zip(labels, labels[1:]))

    for task in ("gender", "smile", "emotion"):
        assert changes(raw, task) >= 40 and changes(smoothed, task) <= 2, task
    assert all(abs(f["age"] - 30) <= 5 / 2 for f in smoothed[1:])
    assert sum(f["emotion"]["probabilities"]["happy"] for f in smoothed[10:]) / 40 == pytest.approx(0.45, abs=0.02)
    summary, = tracker.summaries()
    assert summary == {"track": 1, "first_frame": 0, "last_frame": 49, "faces": 50, "age": 30.0,
                       "gender": "male", "emotion": "neutral", "smile": "no_smile"}


def test_a_label_is_held_until_another_leads_it_by_the_margin():
    """Hysteresis, without averaging (window 1): a face hovering at the boundary keeps the label
    it shows, with that label's probability; a clear change of evidence switches it at once."""
    hovering = [0.52, 0.47, 0.53, 0.46, 0.51, 0.48]
    tracker = FaceTracker(fps=25, window=1, margin=0.1)
    shown = [tracker.update(frame, [face((100, 100, 200, 200), male=p, happy=p, smile=p)])[0]
             for frame, p in enumerate(hovering + [0.3, 0.3])]
    assert [f["gender"]["label"] for f in shown] == ["male"] * 6 + ["female"] * 2
    assert [f["smile"]["label"] for f in shown] == ["smile"] * 6 + ["no_smile"] * 2
    assert [f["emotion"]["label"] for f in shown] == ["happy"] * 6 + ["neutral"] * 2
    assert shown[1]["gender"]["probability"] == pytest.approx(0.47)  # the shown label's own
    unheld = FaceTracker(fps=25, window=1, margin=0.0)
    labels = [unheld.update(frame, [face((100, 100, 200, 200), male=p)])[0]["gender"]["label"]
              for frame, p in enumerate(hovering)]
    assert labels == ["male", "female"] * 3

"""Video: frames/s of `predict_video` on a 640x480 clip made from a real face, at `--every 1` and
`--every 5`, and label flicker (label changes per second of a track) frame by frame against the
tracks' smoothing.

    .venv/bin/python benchmarks/bench_video.py [--seconds 12] [--batch-size 16] [--model PATH]

The clip: a UTKFace face from ../shared/data (or --data) held steady in a 640x480 frame, with the
small jitter a hand-held camera gives (a shift of up to 3 px, a little brightness drift and
sensor noise per frame), 25 frames/s, written with cv2.VideoWriter (mp4v). Nothing about the face
changes, so every label change is flicker. Flicker shows on faces the model is unsure of, so the
face is the one of the first `--candidates` UTKFace faces whose labels sit closest to a decision
boundary (smallest margin of gender, smile or the top two emotions, on a still frame).
"""
import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FPS = 25
TASKS = ("gender", "emotion", "smile")


def utkface_files(data):
    faces = sorted(glob.glob(str(Path(data) / "utkface" / "UTKFace" / "*.jpg")))
    if not faces:
        sys.exit(f"error: no UTKFace faces in {Path(data) / 'utkface' / 'UTKFace'}\n  fix: give --data")
    return faces


def still(face_file, seed=0, shift=(0, 0)):
    """One 640x480 BGR frame: the face (180 px) on a noisy background, shifted by `shift`."""
    import cv2

    rng = np.random.default_rng(seed)
    frame = rng.normal(110, 20, (480, 640, 3)).clip(0, 255).astype(np.uint8)
    dx, dy = shift
    frame[150 + dy:330 + dy, 230 + dx:410 + dx] = cv2.resize(cv2.imread(face_file), (180, 180))
    return frame


def least_certain_face(predictor, faces, candidates):
    """The face file (of the first `candidates`) whose prediction is nearest a label boundary."""
    import cv2

    def margin(face):
        out = [abs(face[t]["probability"] - 0.5) for t in ("gender", "smile") if t in face]
        if "emotion" in face:
            top = sorted(face["emotion"]["probabilities"].values())
            out.append((top[-1] - top[-2]) / 2)
        return min(out)

    frames = [cv2.cvtColor(still(f), cv2.COLOR_BGR2RGB) for f in faces[:candidates]]
    results = predictor.predict_arrays(frames)
    scored = [(margin(found[0]), f) for f, found in zip(faces, results) if found]
    return min(scored)[1]


def make_clip(path, seconds, face_file, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    for _ in range(seconds * FPS):
        frame = still(face_file, seed, tuple(rng.integers(-3, 4, 2)))
        frame = frame.astype(np.float32) * rng.uniform(0.97, 1.03) + rng.normal(0, 4, frame.shape)
        writer.write(frame.clip(0, 255).astype(np.uint8))
    writer.release()
    return path


def run(predictor, clip, every, batch_size, track):
    from facenet_mtl.inference.video import predict_video

    started = time.perf_counter()
    records = list(predict_video(predictor, clip, every=every, batch_size=batch_size, progress=False, tracker=track))
    return records, time.perf_counter() - started


def flicker(records, every):
    """Label changes per second of the clip's main face (the largest face of each frame), by task."""
    frames = [r for r in records if "frame" in r and r["faces"]]
    seconds = (frames[-1]["frame"] - frames[0]["frame"] + every) / FPS
    out = {}
    for task in TASKS:
        labels = [r["faces"][0][task]["label"] for r in frames if task in r["faces"][0]]
        out[task] = sum(a != b for a, b in zip(labels, labels[1:])) / seconds
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--candidates", type=int, default=48, help="UTKFace faces tried for the least certain one")
    parser.add_argument("--search-side", type=int, default=None, help="the detector's search side (predict's option)")
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from facenet_mtl import quiet

    quiet.import_tensorflow()
    from facenet_mtl.data.faces import FaceDetector
    from facenet_mtl.inference.predictor import FacePredictor

    predictor = FacePredictor.from_path(args.model, detector=FaceDetector(search_side=args.search_side)).warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        face_file = least_certain_face(predictor, utkface_files(args.data), args.candidates)
        clip = make_clip(Path(tmp) / "steady_face.mp4", args.seconds, face_file)
        frames = args.seconds * FPS
        predictor.predict_arrays([np.zeros((480, 640, 3), np.uint8)] * 2)  # warm: the detector at this size
        print(f"predict_video on a {args.seconds} s 640x480 clip ({frames} frames at {FPS} fps, one real face: "
              f"{Path(face_file).name}, batch {args.batch_size}, search side {args.search_side or 'full size'}, "
              f"{os.cpu_count()} CPUs), model loaded:")
        results = {}
        for every, track in ((1, False), (1, True), (5, True)):
            records, seconds = run(predictor, clip, every, args.batch_size, track)
            results[every, track] = records
            found = sum(1 for r in records if r.get("faces"))
            print(f"  --every {every} {'tracks' if track else 'frame by frame'}: {frames / seconds:6.1f} frames/s of "
                  f"video ({len([r for r in records if 'frame' in r]) / seconds:5.1f} predicted/s; "
                  f"face in {found} frames)")
        before, after = flicker(results[1, False], 1), flicker(results[1, True], 1)
        print("  label changes per second of the track (frame by frame -> tracks):")
        for task in TASKS:
            ratio = before[task] / after[task] if after[task] else float("inf")
            print(f"    {task:8s} {before[task]:5.2f} -> {after[task]:5.2f}   ({ratio:.1f}x fewer)")
        total_before, total_after = sum(before.values()), sum(after.values())
        print(f"    all      {total_before:5.2f} -> {total_after:5.2f}   "
              f"({total_before / total_after if total_after else float('inf'):.1f}x fewer)")
        summaries = [r["track_summary"] for r in results[1, True] if "track_summary" in r]
        print(f"  tracks: {len(summaries)}; first: {summaries[0] if summaries else None}")


if __name__ == "__main__":
    main()

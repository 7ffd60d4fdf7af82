"""`facenet-mtl predict` over a folder of real photos: photos/s as a user sees it (start-up
included), the start-up alone, and the rate once started.

    .venv/bin/python benchmarks/bench_predict.py [--photos 200] [--batch-size 16] [--model PATH]

The photos are UTKFace faces from ../shared/data (or --data) pasted at random places and sizes
into larger 640x480 canvases of noise, so the detector searches a whole photo as it would in use.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def make_photos(folder, count, data=DATA, seed=0, shape=(480, 640)):
    """`count` photos in `folder`: a UTKFace face (96-240 px) pasted into a noisy canvas each."""
    import cv2

    faces = sorted(glob.glob(str(Path(data) / "utkface" / "UTKFace" / "*.jpg")))
    if not faces:
        sys.exit(f"error: no UTKFace faces in {Path(data) / 'utkface' / 'UTKFace'}\n  fix: give --data, the folder "
                 "holding utkface/UTKFace")
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        canvas = rng.normal(110, 25, (*shape, 3)).clip(0, 255).astype(np.uint8)
        side = int(rng.integers(96, 241))
        face = cv2.resize(cv2.imread(faces[int(rng.integers(len(faces)))]), (side, side))
        y, x = int(rng.integers(0, shape[0] - side)), int(rng.integers(0, shape[1] - side))
        canvas[y:y + side, x:x + side] = face
        paths.append(folder / f"photo{i:04d}.jpg")
        cv2.imwrite(str(paths[-1]), canvas)
    return paths


def timed_predict(inputs, model, batch_size):
    """Wall seconds of one `facenet-mtl predict` process, and the faces it reported."""
    command = [sys.executable, "-m", "facenet_mtl.cli", "predict", *map(str, inputs), "--no-progress",
               "--batch-size", str(batch_size)] + (["--model", str(model)] if model else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"predict failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, sum(line.count('"confidence"') for line in done.stdout.splitlines())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp) / "photos", args.photos, args.data)
        one, _ = timed_predict(paths[:1], args.model, args.batch_size)
        total, faces = timed_predict([Path(tmp) / "photos"], args.model, args.batch_size)
    rate = (args.photos - 1) / max(total - one, 1e-9)
    print(f"predict over a folder of {args.photos} real photos (640x480, one UTKFace face each; "
          f"batch {args.batch_size}, {os.cpu_count()} CPUs):")
    print(f"  one photo, start-up included:   {one:6.1f} s")
    print(f"  {args.photos} photos, start-up included: {total:6.1f} s = {args.photos / total:5.2f} photos/s "
          f"({faces} faces found)")
    print(f"  once started:                    {rate:5.2f} photos/s")


if __name__ == "__main__":
    main()

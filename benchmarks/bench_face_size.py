"""How `predict` does on small faces: UTKFace test faces pasted at several sizes into 640x480
photos, each photo run through the predictor (detect, align, the model) at `--min-face` 20 (the
default) and the sizes given: the share of photos in which the face is found, and the gender
accuracy and age MAE of the faces found, by face size.

    .venv/bin/python benchmarks/bench_face_size.py [--faces 300] [--sizes 24,32,48,64,96,160] [--min-faces 20,40]

What the default smallest face buys: a face smaller than the model's 64-px input is upscaled
before the model reads it, so its labels are less sure; the table says how much less, which is
what a larger default `--min-face` (faster detection) would give up. The faces are the UTKFace
test split (by the reader's salted hash), never trained on; the sizes are the side of the aligned
UTKFace chip, whose face box is about 0.7 of it.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def pasted(chip, side, rng, shape=(480, 640)):
    """`chip` resized to `side` px and pasted at a random place into a noisy photo of `shape`."""
    import cv2

    canvas = rng.normal(110, 25, (*shape, 3)).clip(0, 255).astype(np.uint8)
    face = cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA)
    y, x = int(rng.integers(0, shape[0] - side)), int(rng.integers(0, shape[1] - side))
    canvas[y:y + side, x:x + side] = face
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=300, help="UTKFace test faces per size")
    parser.add_argument("--sizes", default="24,32,48,64,96,160")
    parser.add_argument("--min-faces", default="20,40", help="the detector's smallest faces to compare")
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from facenet_mtl.data import images
    from facenet_mtl.data.faces import FaceDetector
    from facenet_mtl.data.readers.utkface import read
    from facenet_mtl.inference.predictor import FacePredictor

    folder = Path(args.data) / "utkface" / "UTKFace"
    if not folder.is_dir():
        sys.exit(f"error: no UTKFace faces in {folder}\n  fix: give --data, the folder holding utkface/UTKFace")
    records = [r for r in read(folder).records if r.split == "test"][:args.faces]
    chips = [images.load_rgb(r.image) for r in records]
    ages = np.array([r.labels["age"] for r in records], np.float64)
    males = np.array([r.labels["gender"] == 1 for r in records])
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{len(records)} UTKFace test faces per size, pasted into 640x480 photos; "
          f"the shipped model unless --model; {os.cpu_count()} CPUs")
    print(f"{'face px':>8} {'min face':>9} {'found':>7} {'gender %':>9} {'age MAE':>8}")
    for min_face in (int(m) for m in args.min_faces.split(",")):
        predictor = FacePredictor.from_path(args.model, detector=FaceDetector(min_size=min_face))
        for side in sizes:
            rng = np.random.default_rng(side)
            found = predictor.predict_arrays([pasted(chip, side, rng) for chip in chips])
            hit = np.array([bool(faces) for faces in found])
            if not hit.any():
                print(f"{side:>8} {min_face:>9} {0:>7.1%} {'-':>9} {'-':>8}")
                continue
            first = [faces[0] for faces in found if faces]  # the largest face: the pasted one
            gender = np.mean(np.array([f["gender"]["label"] == "male" for f in first]) == males[hit])
            mae = np.mean(np.abs(np.array([f["age"] for f in first]) - ages[hit]))
            print(f"{side:>8} {min_face:>9} {hit.mean():>7.1%} {gender:>9.2%} {mae:>8.2f}")


if __name__ == "__main__":
    main()

"""Measure where MTCNN puts the five landmarks in a dataset's pre-cropped faces.

The means are the constants behind one face framing (`facenet_mtl.data.faces.TEMPLATE`, from
UTKFace) and each source's `FRAMING` (FER2013, CelebA, FairFace), which aligns crops that are too
small or too many to detect one by one. Images are padded by a quarter of their side first, so
a face that fills its crop is still found. Prints, per dataset, how many faces were found and the
mean, left-right symmetric mean and spread of each landmark as fractions of width and height.

    python benchmarks/framing.py --data ../shared/data --n 250
"""
import argparse
import glob
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from facenet_mtl.data.faces import LANDMARKS, FaceDetector, landmark_array


def symmetric(points):
    """The left-right symmetric layout closest to `points` (pairs mirrored about their mean x)."""
    p = np.asarray(points)
    cx = (p[0, 0] + p[1, 0] + p[3, 0] + p[4, 0] + 2 * p[2, 0]) / 6
    eye_y, mouth_y = p[:2, 1].mean(), p[3:, 1].mean()
    eye_w, mouth_w = (p[1, 0] - p[0, 0]) / 2, (p[4, 0] - p[3, 0]) / 2
    return [(cx - eye_w, eye_y), (cx + eye_w, eye_y), (cx, p[2, 1]), (cx - mouth_w, mouth_y), (cx + mouth_w, mouth_y)]


def sources(data, n):
    rgb = lambda path: cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)  # noqa: E731
    files = sorted(glob.glob(f"{data}/utkface/UTKFace/*.jpg"))
    yield "utkface", [rgb(f) for f in files[::max(1, len(files) // n)][:n]]
    files = sorted(glob.glob(f"{data}/celeba/img_align_celeba/*.jpg"))
    yield "celeba", [rgb(f) for f in files[::max(1, len(files) // n)][:n]]
    files = sorted(glob.glob(f"{data}/fairface/train/*.jpg"))
    yield "fairface", [rgb(f) for f in files[::max(1, len(files) // n)][:n]]
    with zipfile.ZipFile(f"{data}/fer2013/fer2013_images.zip") as archive:
        names = [m for m in archive.namelist() if m.endswith(".jpg") and "train/" in m]
        names = names[::max(1, len(names) // n)][:n]
        yield "fer2013", [np.dstack([cv2.imdecode(np.frombuffer(archive.read(m), np.uint8), cv2.IMREAD_GRAYSCALE)] * 3)
                          for m in names]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--n", type=int, default=250)
    args = parser.parse_args()
    detector = FaceDetector()
    for name, crops in sources(Path(args.data), args.n):
        points = []
        for crop, faces in zip(crops, detector.detect_batch(crops)):
            p = landmark_array(faces[0]) if faces else None
            if p is not None:
                points.append(p / [crop.shape[1], crop.shape[0]])
        points = np.asarray(points)
        print(json.dumps({"dataset": name, "n": len(crops), "found": len(points), "landmarks": LANDMARKS,
                          "mean": np.round(points.mean(0), 4).tolist(),
                          "symmetric": np.round(symmetric(points.mean(0)), 4).tolist(),
                          "sd": np.round(points.std(0), 4).tolist()}))


if __name__ == "__main__":
    main()

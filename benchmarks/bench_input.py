"""Input throughput on this machine: `build-tfrecords` (images/s) and the tf.data pipeline
(images/s at 112x112, augmentation on, from cache after the first pass).

    .venv/bin/python benchmarks/bench_input.py [--images 3000] [--size 112]

Targets (issue "Data"): build >= 300 img/s, pipeline >= 2,000 img/s on 2 cores.
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batches", type=int, default=150)
    args = parser.parse_args()

    from facenet_mtl.demo.datasets import make_demo_data
    from facenet_mtl.data.pipeline import InputSpec, make_dataset
    from facenet_mtl.data.records import BuildOptions, build_tfrecords

    with tempfile.TemporaryDirectory() as tmp:
        native = make_demo_data(f"{tmp}/native", seed=0, sizes={"utkface": args.images})["utkface"]
        started = time.time()
        manifest = build_tfrecords("utkface", native, f"{tmp}/records",
                                   BuildOptions(image_size=args.size, progress=False))
        built = sum(s["count"] for s in manifest["splits"].values())
        build_rate = built / (time.time() - started)
        print(f"build-tfrecords: {built} images in {time.time() - started:.1f}s = {build_rate:.0f} img/s "
              f"(utkface layout, 200px JPEGs -> {args.size}px, all cores)")

        spec = InputSpec(root=f"{tmp}/records", datasets=("utkface",), image_size=args.size, batch_size=64,
                         augment=True)
        ds, _ = make_dataset(spec, "train", ("age", "age_probs", "gender"), training=True)
        it = iter(ds)
        for _ in range(int(np.ceil(built / 64)) + 5):  # first pass fills the cache
            next(it)
        started = time.time()
        for _ in range(args.batches):
            next(it)
        rate = args.batches * 64 / (time.time() - started)
        print(f"tf.data pipeline: {rate:.0f} img/s at {args.size}x{args.size}, augmentation on, batch 64")


if __name__ == "__main__":
    main()

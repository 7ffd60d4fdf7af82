"""Training throughput through `facenet-mtl train` versus a bare `model.fit` on the same model and
data, and warm predict latency per face.

    .venv/bin/python benchmarks/bench_train.py [--backbone resnet18 --size 112 --steps 20]

Targets (issue "Model"): overhead ratio (package img/s / bare img/s) >= 0.95; predict < 50 ms per
face for ResNet-18 at 112x112 on this CPU. The first epoch (tracing) is excluded from both.
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


class EpochTimer:
    def __init__(self):
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.t = time.time()

            def on_epoch_end(cb, epoch, logs=None):
                self.seconds.append(time.time() - cb.t)

        self.seconds = []
        self.callback = _Timer()


def bare_fit(cfg, args, build_model, compile_for_phase, make_dataset, input_spec, output_names_for):
    """The same model, losses and data through a plain model.fit; returns seconds per epoch."""
    import keras

    keras.utils.set_random_seed(1)
    model = build_model(args.backbone, ("age", "gender"), args.size)
    compile_for_phase(cfg, model, "full")
    ds, _ = make_dataset(input_spec(cfg), "train", output_names_for(("age", "gender")), training=True)
    timer = EpochTimer()
    model.fit(ds, epochs=args.epochs, steps_per_epoch=args.steps, callbacks=[timer.callback], verbose=0)
    return timer.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import keras

    from facenet_mtl.demo.datasets import make_demo_data
    from facenet_mtl.data.pipeline import make_dataset
    from facenet_mtl.data.records import BuildOptions, build_tfrecords
    from facenet_mtl.inference.predictor import FacePredictor
    from facenet_mtl.models import build_model, output_names_for
    from facenet_mtl.training.config import parse_config
    from facenet_mtl.training.plan import compile_for_phase
    from facenet_mtl.training.trainer import input_spec, train

    with tempfile.TemporaryDirectory() as tmp:
        native = make_demo_data(f"{tmp}/native", seed=0, sizes={"utkface": 1200})["utkface"]
        build_tfrecords("utkface", native, f"{tmp}/records", BuildOptions(image_size=args.size, progress=False))
        cfg = parse_config({
            "name": "bench", "model": {"backbone": args.backbone, "input_size": args.size, "tasks": ["age", "gender"]},
            "data": {"root": f"{tmp}/records", "datasets": ["utkface"], "batch_size": args.batch,
                     "valid_split": "none", "test_split": "none"},
            "optimizer": {"name": "sgd", "lr": 0.01, "schedule": "constant"},
            "train": {"epochs": args.epochs, "steps_per_epoch": args.steps, "precision": args.precision}})
        images = args.steps * args.batch

        # The first training in a process pays one-time costs (kernel selection, allocator
        # growth) that would otherwise be charged to whichever side runs first.
        bare_fit(cfg, args, build_model, compile_for_phase, make_dataset, input_spec, output_names_for)

        started = time.time()
        run_dir = train(cfg, f"{tmp}/runs", verbose=0)
        package_wall = time.time() - started
        state = json.loads((run_dir / "state.json").read_text())
        package_rate = images / np.mean(state["epoch_seconds"][1:])

        bare_rate = images / np.mean(bare_fit(cfg, args, build_model, compile_for_phase, make_dataset,
                                              input_spec, output_names_for)[1:])
        print(f"train {args.backbone} {args.size}px batch {args.batch} ({keras.mixed_precision.global_policy().name}): "
              f"facenet-mtl train {package_rate:.1f} img/s, bare model.fit {bare_rate:.1f} img/s, "
              f"ratio {package_rate / bare_rate:.3f} (whole train() incl. export+eval: {package_wall:.0f}s)")

        predictor = FacePredictor.from_path(run_dir / "model.h5")
        face = np.random.default_rng(0).uniform(0, 255, (1, args.size, args.size, 3)).astype("float32")
        for _ in range(5):
            predictor.predict_faces(face)
        times = []
        for _ in range(50):
            t = time.perf_counter()
            predictor.predict_faces(face)
            times.append(time.perf_counter() - t)
        print(f"predict latency per face (warm, batch 1): median {1000 * np.median(times):.1f} ms, "
              f"p90 {1000 * np.percentile(times, 90):.1f} ms")


if __name__ == "__main__":
    main()

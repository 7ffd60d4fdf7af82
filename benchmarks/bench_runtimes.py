"""Per-face prediction latency of one model in four runtimes, side by side: Keras `predict`, the
compiled Keras forward pass (what `FacePredictor` calls: `artifact.forward.compiled_forward`, a
test-time-views model's views as one batch), onnxruntime and LiteRT, at batch 1 and 32.

    .venv/bin/python benchmarks/bench_runtimes.py [MODEL] [--repeats 30]

MODEL defaults to the shipped model; the ONNX and LiteRT files are written by
`facenet_mtl.artifact.exporting` (checked against Keras) into a temporary folder. Each figure is
the median over `--repeats` calls after two warm-up calls, in ms per call and ms per face.
Needs the `export` extra (pip install "facenet-mtl[export]").
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def median_ms(call, repeats):
    call(), call()  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="a .h5 / .keras (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batches", default="1,32")
    args = parser.parse_args()

    import keras

    from facenet_mtl.artifact import exporting
    from facenet_mtl.artifact.forward import compiled_forward
    from facenet_mtl.weights import release_model_path

    path = Path(args.model) if args.model else release_model_path()
    model = keras.models.load_model(path, compile=False)
    size = int(model.input_shape[1])
    forward = compiled_forward(model)
    with tempfile.TemporaryDirectory() as folder:
        onnx = exporting.export_model(model, "onnx", Path(folder) / "m.onnx")
        litert = exporting.export_model(model, "litert", Path(folder) / "m.tflite")
        import onnxruntime

        session = onnxruntime.InferenceSession(str(onnx.path), providers=["CPUExecutionProvider"])
        signature = exporting.litert_interpreter(litert.path).get_signature_runner("serving_default")
        print(f"model {path} ({model.count_params():,} parameters, {size} px); onnx max diff "
              f"{onnx.max_difference:.1e}, litert max diff {litert.max_difference:.1e}; medians of {args.repeats}")
        print(f"{'runtime':<28}" + "".join(f"{'batch ' + b + ' ms/call':>20}{'ms/face':>10}"
                                           for b in args.batches.split(",")))
        runtimes = {
            "keras predict": lambda x: model.predict(x, verbose=0),
            "keras compiled forward": lambda x: forward(x),
            "onnxruntime": lambda x: session.run(None, {"image": x}),
            "litert": lambda x: signature(image=x),
        }
        for name, run in runtimes.items():
            row = f"{name:<28}"
            for batch in (int(b) for b in args.batches.split(",")):
                x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
                ms = median_ms(lambda: run(x), args.repeats)
                row += f"{ms:>20.2f}{ms / batch:>10.3f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()

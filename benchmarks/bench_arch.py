"""The architecture by throughput: train-step img/s and achieved GFLOP/s of backbone candidates,
against this machine's measured matmul peak.

    .venv/bin/python benchmarks/bench_arch.py [--config experiments/release/release-mtl.toml]
        [--steps 30] [--rounds 3] [--candidate NAME:FIELD=VALUE,FIELD=VALUE ...]

For each candidate (the config with its overrides) and each of jit_compile off / on: train steps
of the config's four-head model and losses on one in-memory batch (forward + backward + update,
no input work), under the config's precision, medians of alternating rounds. FLOPs are counted
from the layer shapes (a conv's or dense layer's multiply-adds x 2, BatchNorm and pooling left
out), a training step as 3 x the forward pass (the backward pass costs about twice the forward).
The peak is a bfloat16 and a float32 4096 x 4096 matmul on all cores, run the same way.
The batch is one batch of the config's records and mixing (`make release` builds them).
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_CANDIDATES = [
    "separable:",
    "dense:model.backbone_args.conv=dense",
    "dense-narrow:model.backbone_args.conv=dense,model.backbone_args.widths=[32,64,128,256],"
    "model.backbone_args.stem_width=32",
]


def forward_flops(model):
    """Multiply-adds x 2 of every conv and dense layer of `model` (nested models included), per image."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        out = layer.output.shape
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw, cin, mult = layer.depthwise_kernel.shape
            h, w, cout = out[1], out[2], out[3]
            total += 2 * h * w * (kh * kw * cin * mult + cin * mult * cout)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, cin, mult = layer.kernel.shape
            total += 2 * out[1] * out[2] * kh * kw * cin * mult
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * out[1] * out[2] * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += 2 * cin * cout
    return total


def matmul_peak(dtype, size=4096, repeats=10):
    import tensorflow as tf

    a = tf.random.uniform((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)

    @tf.function
    def run():
        c = a
        for _ in range(repeats):
            c = tf.matmul(c, b)
            c = c / tf.cast(size, dtype)
        return c

    run().numpy()
    started = time.perf_counter()
    run().numpy()
    return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e9


def parse_candidate(text):
    name, _, fields = text.partition(":")
    return name, [item for item in _split_fields(fields) if item]


def _split_fields(text):
    """Split "a=1,b=[1,2]" at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/release/release-mtl.toml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidate", action="append", default=[])
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from facenet_mtl.data.pipeline import make_dataset
    from facenet_mtl.models import output_names_for
    from facenet_mtl.training.config import load_config
    from facenet_mtl.training.plan import build_network, compile_for_phase, trained_model
    from facenet_mtl.training.precision import set_precision
    from facenet_mtl.training.trainer import input_spec

    peaks = {"bfloat16": matmul_peak(tf.bfloat16), "float32": matmul_peak(tf.float32)}
    print(f"matmul peak: bfloat16 {peaks['bfloat16']:.0f} GFLOP/s, float32 {peaks['float32']:.0f} GFLOP/s", flush=True)
    runs = []
    for text in args.candidate or DEFAULT_CANDIDATES:
        name, overrides = parse_candidate(text)
        cfg = load_config(args.config, overrides)
        set_precision(cfg.train.precision)
        keras.utils.set_random_seed(cfg.train.seed)
        batch = cfg.data.batch_size
        outputs = output_names_for(cfg.model.tasks)
        pipeline, _ = make_dataset(input_spec(cfg), cfg.data.train_split, outputs, training=True)
        x, y, w = next(iter(pipeline))  # one real batch of the config's mixing, held in memory
        data = tf.data.Dataset.from_tensors((x, y, w)).repeat().prefetch(2)
        flops = None
        compiled = {}
        for jit in (False, True):
            network = build_network(cfg.model)
            flops = flops or 3 * forward_flops(network)
            model = trained_model(cfg, network)
            compile_for_phase(cfg, model, "full")
            model.jit_compile = jit
            model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # trace
            compiled[jit] = model
        speeds = {False: [], True: []}
        for _ in range(args.rounds):
            for jit, model in compiled.items():
                started = time.perf_counter()
                model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
                speeds[jit].append(args.steps * batch / (time.perf_counter() - started))
        policy = keras.config.dtype_policy().name
        peak = peaks["bfloat16" if "bfloat16" in policy else "float32"]
        for jit, values in speeds.items():
            img_s = statistics.median(values)
            gflops = img_s * flops / 1e9
            row = {"candidate": name, "overrides": overrides, "jit_compile": jit, "policy": policy,
                   "params": int(compiled[jit].count_params()), "train_gflop_per_image": round(flops / 1e9, 4),
                   "img_s": round(img_s, 1), "gflop_s": round(gflops, 1), "share_of_peak": round(gflops / peak, 4)}
            runs.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflop_s": peaks, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()

"""Training speed of the real-faces recipe (`make real`) and how a step divides between input and model.

    .venv/bin/python benchmarks/bench_real.py [--config experiments/real/real-mtl.toml] [--steps 150]
                                              [--set model.input_size=48 ...]

Needs the records `make real` builds (data_out/real). Three measurements on the config's model,
losses, mixing and batch size, each after a warm-up (tracing) that is not counted:
  input   the tf.data pipeline alone (read, decode, mix, augment, batch), iterated as fast as it goes;
  model   train steps on one batch held in memory (forward + backward + update, no input work);
  fit     model.fit on the real pipeline, as `facenet-mtl train` runs it.
The input share of a training step is 1 - model/fit time: what the step pays beyond the model's own
compute (input work that prefetch did not hide, plus contention for the same cores). The three are
measured in alternating rounds through the same compiled train step, medians reported, because this
machine's speed drifts by tens of percent over minutes.
"""
import argparse
import os
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/real/real-mtl.toml")
    parser.add_argument("--steps", type=int, default=50, help="steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="FIELD=VALUE")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from facenet_mtl.data.pipeline import make_dataset
    from facenet_mtl.models import output_names_for
    from facenet_mtl.training.config import load_config
    from facenet_mtl.training.precision import set_precision
    from facenet_mtl.training.plan import build_network, compile_for_phase, trained_model
    from facenet_mtl.training.trainer import input_spec

    cfg = load_config(args.config, args.overrides)
    keras.utils.set_random_seed(cfg.train.seed)
    policy = set_precision(cfg.train.precision)
    outputs = output_names_for(cfg.model.tasks)
    dataset, _ = make_dataset(input_spec(cfg), cfg.data.train_split, outputs, training=True)
    batch = cfg.data.batch_size

    def timed(step, steps):
        started = time.perf_counter()
        step(steps)
        return images_per(steps) / (time.perf_counter() - started)

    def images_per(steps):
        return steps * batch

    iterator = iter(dataset)

    def pull(steps):
        for _ in range(steps):
            next(iterator)

    network = build_network(cfg.model)
    model = trained_model(cfg, network)
    compile_for_phase(cfg, model, "full")
    held = tf.data.Dataset.from_tensors(next(iterator)).repeat()
    held_iterator, live_iterator = iter(held), iter(dataset)

    def model_only(steps):
        for _ in range(steps):
            model.train_function(held_iterator)

    def fit(steps):
        for _ in range(steps):
            model.train_function(live_iterator)

    # One fit call builds model.train_function (and traces it); then both sides call that same
    # compiled step, alternating in rounds so that drift in the machine's speed hits both equally.
    model.fit(held, epochs=1, steps_per_epoch=10, verbose=0)
    pull(20), model_only(10), fit(10)
    rounds = {"input": [], "model": [], "fit": []}
    for _ in range(args.rounds):
        rounds["input"].append(timed(pull, args.steps))
        rounds["model"].append(timed(model_only, args.steps))
        rounds["fit"].append(timed(fit, args.steps))
    input_rate, model_rate, fit_rate = (float(np.median(rounds[k])) for k in ("input", "model", "fit"))

    print(f"{cfg.name}: {cfg.model.backbone} {cfg.model.input_size}px, {network.count_params():,} parameters, "
          f"batch {batch}, {policy}, {os.cpu_count()} cores, {args.rounds} rounds of {args.steps} steps, medians")
    print(f"  input pipeline alone   {input_rate:8.0f} img/s")
    print(f"  model step alone       {model_rate:8.0f} img/s")
    print(f"  fit (input + model)    {fit_rate:8.0f} img/s")
    print(f"  input share of a step  {max(0.0, 1 - fit_rate / model_rate):8.0%}  (1 - model/fit step time: what input "
          "costs a step beyond the model, prefetch overlap included)")
    print(f"  input CPU work         {model_rate / input_rate:8.0%}  of the model's (the pipeline's cost per image "
          "relative to a train step's)")


if __name__ == "__main__":
    main()

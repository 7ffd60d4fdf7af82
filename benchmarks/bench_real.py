"""Training speed of the real-faces recipe (`make real`) and how a step divides between input and model.

    .venv/bin/python benchmarks/bench_real.py [--config experiments/real/real-mtl.toml] [--steps 150]
                                              [--set model.input_size=48 ...]

Needs the records `make real` builds (data_out/real). Three measurements on the config's model,
losses, mixing and batch size, each after a warm-up (tracing) that is not counted:
  input   the tf.data pipeline alone (read, decode, mix, augment, batch), iterated as fast as it goes;
  model   train steps on one batch held in memory (forward + backward + update, no input work);
  fit     model.fit on the real pipeline, as `facenet-mtl train` runs it.
The input share of a training step is 1 - model/fit time: what the step pays beyond the model's own
compute (input work that prefetch did not hide, plus contention for the same cores).
"""
import argparse
import os
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/real/real-mtl.toml")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="FIELD=VALUE")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from facenet_mtl.data.pipeline import make_dataset
    from facenet_mtl.models import build_model, output_names_for
    from facenet_mtl.training.config import load_config
    from facenet_mtl.training.precision import set_precision
    from facenet_mtl.training.trainer import compile_for_phase, input_spec, trained_model

    cfg = load_config(args.config, args.overrides)
    keras.utils.set_random_seed(cfg.train.seed)
    policy = set_precision(cfg.train.precision)
    outputs = output_names_for(cfg.model.tasks)
    dataset, _ = make_dataset(input_spec(cfg), cfg.data.train_split, outputs, training=True)
    batch = cfg.data.batch_size
    images = args.steps * batch

    def rate(seconds):
        return images / seconds

    iterator = iter(dataset)
    for _ in range(20):
        next(iterator)
    started = time.perf_counter()
    for _ in range(args.steps):
        next(iterator)
    input_rate = rate(time.perf_counter() - started)

    network = build_model(backbone=cfg.model.backbone, tasks=tuple(cfg.model.tasks), input_size=cfg.model.input_size,
                          backbone_args=dict(cfg.model.backbone_args), dropout=cfg.model.dropout,
                          head_units=cfg.model.head_units)
    model = trained_model(cfg, network)
    compile_for_phase(cfg, model, "full")
    held = tf.data.Dataset.from_tensors(next(iterator)).repeat()
    model.fit(held, epochs=1, steps_per_epoch=20, verbose=0)
    started = time.perf_counter()
    model.fit(held, epochs=1, steps_per_epoch=args.steps, verbose=0)
    model_rate = rate(time.perf_counter() - started)

    model.fit(dataset, epochs=1, steps_per_epoch=20, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
    fit_rate = rate(time.perf_counter() - started)

    print(f"{cfg.name}: {cfg.model.backbone} {cfg.model.input_size}px, {network.count_params():,} parameters, "
          f"batch {batch}, {policy}, {os.cpu_count()} cores, {args.steps} steps each")
    print(f"  input pipeline alone   {input_rate:8.0f} img/s")
    print(f"  model step alone       {model_rate:8.0f} img/s")
    print(f"  fit (input + model)    {fit_rate:8.0f} img/s")
    print(f"  input share of a step  {max(0.0, 1 - fit_rate / model_rate):8.0%}")


if __name__ == "__main__":
    main()

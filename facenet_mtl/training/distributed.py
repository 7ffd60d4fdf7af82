"""Multi-machine training with `MultiWorkerMirroredStrategy` (TF_CONFIG names the workers).

Keras 3.15's `model.fit` fails under this strategy ("PerReplica cannot be converted to a
Tensor"), so this module runs the same model, losses, loss weights and optimizer in a custom
train step: `strategy.run` over `experimental_distribute_dataset`, gradients all-reduced by the
optimizer. Checkpoints follow the trainer's layout; only the chief writes them.
"""
import json
import os
import time

import tensorflow as tf

from facenet_mtl.training import callbacks as cb


def is_chief():
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


def make_train_step(model, strategy):
    """A distributed step returning the global mean loss; uses the model's compiled losses."""
    outputs = list(model.output_names)
    losses = {name: model.loss[name] for name in outputs}
    weights = {name: float(model._compile_loss._user_loss_weights[name]) for name in outputs}
    optimizer = model.optimizer
    replicas = strategy.num_replicas_in_sync

    def replica_step(x, y, sw):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            total = tf.add_n([weights[n] * tf.cast(losses[n](y[n], pred[n], sample_weight=sw[n]), tf.float32)
                              for n in outputs])
            scaled = total / replicas
            if hasattr(optimizer, "scale_loss"):
                scaled = optimizer.scale_loss(scaled)
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return total

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None) / replicas

    return step


def fit_multi_worker(cfg, model, strategy, train_ds, steps, run_dir, state):
    from facenet_mtl.training.trainer import compile_for_phase, learning_rate_at

    with strategy.scope():
        compile_for_phase(cfg, model, "full")
        model.optimizer.build(model.trainable_variables)
        if state.get("epoch"):
            cb.restore_checkpoint(model, run_dir)
    step = make_train_step(model, strategy)
    batches = iter(strategy.experimental_distribute_dataset(train_ds))
    chief = is_chief()
    history_path = run_dir / "history.csv"
    for epoch in range(int(state.get("epoch", 0)), cfg.train.epochs):
        lr = learning_rate_at(cfg.optimizer, epoch, cfg.train.epochs)
        model.optimizer.learning_rate.assign(lr)
        started, total = time.time(), 0.0
        for _ in range(steps):
            total += float(step(next(batches)))
        loss = total / steps
        print(f"epoch {epoch + 1}/{cfg.train.epochs} loss {loss:.4f} lr {lr:.5g} ({time.time() - started:.0f}s)")
        target = run_dir if chief else run_dir / f".worker-{os.getpid()}"
        target.mkdir(parents=True, exist_ok=True)
        (target / "checkpoints").mkdir(exist_ok=True)
        model.save_weights(target / cb.LAST)  # every worker saves (collective ops); chief's is kept
        if chief:
            new = not history_path.exists()
            with open(history_path, "a") as f:
                if new:
                    f.write("epoch,loss,lr\n")
                f.write(f"{epoch},{loss},{lr}\n")
            s = cb.read_state(run_dir)
            s.update(epoch=epoch + 1, phase="full",
                     train_seconds=s.get("train_seconds", 0.0) + time.time() - started)
            cb.write_state(run_dir, s)

"""Multi-machine training with `MultiWorkerMirroredStrategy` (TF_CONFIG names the workers).

Keras 3.15's `model.fit` fails under this strategy ("PerReplica cannot be converted to a
Tensor"), so this module trains the same model, per-output losses, loss weights and optimizer
with a custom step: `strategy.run` over `experimental_distribute_dataset`, the gradients summed
across replicas by the optimizer. It keeps the trainer's run directory: the heads-first and full
phases and the one phase loop (`plan.phases_to_train`), the epoch-level learning rate, and the
same `RunDir` checkpoint (weights and optimizer state), `state.json` and `history.csv` (loss per
output) after every epoch, so a rerun resumes.

Unlike `model.fit`, a multi-worker run has no validation pass, hence no best-epoch weights, no
early stopping and no TensorBoard logs: the exported model is the last epoch's. As under `fit`
with a mirrored strategy, BatchNorm normalises with each replica's own share of the batch.

Every worker runs the same code, and takes each epoch's checkpoint snapshot (reading a variable
may be a collective op); only the chief writes the run directory. The run directory must be on a
filesystem all workers see, for a rerun to resume.
"""
import logging
import time

import keras
import tensorflow as tf

from facenet_mtl.training.plan import learning_rate_at, loss_setup, phases_to_train
from facenet_mtl.training.precision import is_chief
from facenet_mtl.training.rundir import snapshot

log = logging.getLogger(__name__)

SUM = tf.distribute.ReduceOp.SUM


def summed(loss):
    """The same loss with reduction "sum": the sample-weighted sum over the batch it is given."""
    return type(loss).from_config({**loss.get_config(), "reduction": "sum"})


def replica_losses(y, pred, sample_weight, summed_losses, loss_weights, all_reduce_sum):
    """This replica's share of the global batch's losses: {"loss": weighted total, "<output>_loss"}.

    A head's share is its sample-weighted loss sum on this replica (`summed_losses`, see
    `summed`) divided by its weight sum over the *global* batch (`all_reduce_sum` adds a tensor
    over the replicas). The shares add up to what the compiled "mean_with_sample_weight" loss
    gives on the whole global batch on one device, however the masked samples (weight 0) fall
    across replicas; a head with no label in the global batch costs 0.
    """
    outputs = list(summed_losses)
    local_weight = tf.stack([tf.reduce_sum(tf.cast(sample_weight[n], tf.float32)) for n in outputs])
    global_weight = all_reduce_sum(local_weight)
    logs = {}
    for i, name in enumerate(outputs):
        weighted_sum = summed_losses[name](y[name], pred[name], sample_weight=sample_weight[name])
        logs[f"{name}_loss"] = tf.math.divide_no_nan(tf.cast(weighted_sum, tf.float32), global_weight[i])
    logs["loss"] = tf.add_n([float(loss_weights[n]) * logs[f"{n}_loss"] for n in outputs])
    return logs


def make_train_step(model, optimizer, losses, loss_weights, strategy):
    """A tf.function taking an iterator over `distribute_dataset(...)`: one optimizer step on its
    next global batch; returns that batch's losses as floats tensors (`replica_losses`' keys).

    `losses` and `loss_weights` are by output name (`loss_setup`). Make one step per phase: it
    trains the variables that are trainable when it is made. Create `optimizer` and its
    variables under `strategy.scope()`.
    """
    summed_losses = {name: summed(loss) for name, loss in losses.items()}
    variables = list(model.trainable_variables)
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)  # mixed_float16

    def all_reduce_sum(value):
        return tf.distribute.get_replica_context().all_reduce(SUM, value)

    def replica_step(x, y, sample_weight):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            logs = replica_losses(y, pred, sample_weight, summed_losses, loss_weights, all_reduce_sum)
            scaled = optimizer.scale_loss(logs["loss"])  # × the dynamic loss scale, or unchanged
        grads = tape.gradient(scaled, variables)
        if loss_scaling:
            grads = _non_finite_everywhere(grads, all_reduce_sum)
        optimizer.apply_gradients(zip(grads, variables))  # unscales, all-reduces, applies
        return logs

    @tf.function
    def step(iterator):
        per_replica = strategy.run(replica_step, args=next(iterator))
        return {key: strategy.reduce(SUM, value, axis=None) for key, value in per_replica.items()}

    return step


def _non_finite_everywhere(grads, all_reduce_sum):
    """A LossScaleOptimizer checks each replica's gradients for inf/NaN on its own and skips the
    step, gradient all-reduce included, where it finds one: replicas that disagree would wait on
    each other for ever. So when any replica has a non-finite gradient, all of them get one."""
    finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]))
    replicas_not_finite = all_reduce_sum(1.0 - tf.cast(finite, tf.float32))
    factor = tf.where(replicas_not_finite > 0, float("nan"), 1.0)
    return [None if g is None else g * tf.cast(factor, g.dtype) for g in grads]


def distribute_dataset(train_ds, strategy):
    """The pipeline's batches (global batch size) split over the replicas. The mixed, repeated
    stream cannot be sharded by file, so every worker reads it all and keeps its share of each
    batch (auto-shard policy DATA); the workers' streams agree because they share the seeds."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(train_ds.with_options(options))


def fit_multi_worker(cfg, model, strategy, train_ds, steps, run, state):
    """Train `model` (built under `strategy.scope()`) on `train_ds` (the pipeline's training
    dataset) for the config's phases, `steps` per epoch, from the epoch `state` says is done,
    into `run` (a `RunDir`). Works under any strategy; the trainer uses it for
    MultiWorkerMirroredStrategy."""
    chief = is_chief()
    _epochs_done_on_every_worker(strategy, int(state.get("epoch", 0)))
    if cfg.train.monitor or cfg.train.patience:
        log.warning("multi-worker training has no validation pass: train.monitor and train.patience "
                    "are ignored and the last epoch's weights are exported")
    losses, loss_weights = loss_setup(cfg, list(model.output_names))
    batches = iter(distribute_dataset(train_ds, strategy))
    for phase, first, end in phases_to_train(cfg, model, strategy, run, state):
        step = make_train_step(model, model.optimizer, losses, loss_weights, strategy)
        for epoch in range(first, end):
            lr = learning_rate_at(cfg.optimizer, epoch, cfg.train.epochs)
            model.optimizer.learning_rate.assign(lr)
            started = time.time()
            logs = _train_epoch(step, batches, steps)
            logs["lr"] = lr
            arrays = snapshot(model)  # on every worker: reading a variable may be a collective op
            if chief:
                seconds = time.time() - started
                run.append_history(epoch, logs)
                run.record_epoch(epoch, phase, seconds, arrays=arrays)
                log.info(f"epoch {epoch + 1}/{cfg.train.epochs} ({phase}) loss {logs['loss']:.4f} "
                      f"lr {lr:.3g} {seconds:.0f}s")


def _train_epoch(step, batches, steps):
    """Mean over `steps` steps of each loss, as floats."""
    totals = None
    for _ in range(steps):
        logs = step(batches)
        totals = logs if totals is None else {k: totals[k] + v for k, v in logs.items()}
    return {k: float(v) / steps for k, v in totals.items()}


def _epochs_done_on_every_worker(strategy, done):
    """`done`, checked to be the same on every worker: a worker that cannot see the chief's run
    directory would otherwise start over while the others resume, and their collectives hang."""
    value = float(done)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda _: tf.constant([1.0, value, value * value]))
    count, total, squares = (float(v) for v in strategy.reduce(SUM, per_replica, axis=None))
    if abs(squares / count - (total / count) ** 2) > 1e-6:
        raise RuntimeError(f"the workers disagree on the epochs done (this one: {done}, mean: "
                           f"{total / count:g}): put the run directory on a filesystem every worker sees, "
                           "or restart the run")
    return done

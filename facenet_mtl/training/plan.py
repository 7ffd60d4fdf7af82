"""What a run trains and how, for both trainers (`trainer`, under Keras `fit`, and `distributed`,
the multi-worker custom step): the network a config describes, the phases (heads first with the
backbone frozen, then all), the epoch-level learning-rate schedule, the optimizer, which layers
each phase trains, the losses and the compile. `phases_to_train` is the one phase loop.

>>> from facenet_mtl.training.config import parse_config
>>> cfg = parse_config({"name": "x", "model": {"backbone": "compact", "tasks": ["age"]},
...                     "train": {"epochs": 5, "freeze_backbone_epochs": 2}})
>>> phases(cfg)
[('heads', 0, 2), ('full', 2, 5)]
"""
import math

import keras

from facenet_mtl import tasks
from facenet_mtl.models import build_model, set_backbone_trainable
from facenet_mtl.training.balancing import UncertaintyWeighting, network_of
from facenet_mtl.training.losses import head_losses, head_metrics, output_loss_weights


def build_network(model_cfg):
    """The functional network a config's `[model]` section describes, untrained."""
    return build_model(backbone=model_cfg.backbone, tasks=tuple(model_cfg.tasks), input_size=model_cfg.input_size,
                       backbone_args=dict(model_cfg.backbone_args), dropout=model_cfg.dropout,
                       head_units=model_cfg.head_units)


def phases(cfg):
    """[(phase, first_epoch, end_epoch)]: heads-first with the backbone frozen, then all."""
    frozen = min(cfg.train.freeze_backbone_epochs, cfg.train.epochs)
    plan = [("heads", 0, frozen)] if frozen else []
    if frozen < cfg.train.epochs:
        plan.append(("full", frozen, cfg.train.epochs))
    return plan


def phases_to_train(cfg, model, strategy, run, state):
    """The phases a run still has to train, each compiled and its optimizer built (under
    `strategy.scope()`) when it is yielded: (phase, first_epoch, end_epoch) for every phase that
    ends after the `state["epoch"]` epochs done, the first epoch being the one after those.

    A resumed run (epochs done) starts from `run`'s checkpoint (a `RunDir`): weights and optimizer
    state are restored under the phase they were saved in (its optimizer has other variables),
    then the model is compiled for the phase to train if that is another one."""
    done = int(state.get("epoch", 0))
    resuming = done > 0
    for phase, first, end in phases(cfg):
        if end <= done:
            continue
        with strategy.scope():
            compiled_for = None
            if resuming:
                compiled_for = state.get("phase", phase)
                compile_for_phase(cfg, model, compiled_for)
                run.restore_checkpoint(model)
            if compiled_for != phase:
                compile_for_phase(cfg, model, phase)
            if not model.optimizer.built:  # a LossScaleOptimizer built twice gets new variables
                model.optimizer.build(model.trainable_variables)
        resuming = False
        yield phase, max(first, done), end


def trained_model(cfg, network):
    """What `fit` trains: the functional network itself, or with `loss.balancing` "uncertainty"
    an `UncertaintyWeighting` around it that also learns the task weights (build it once per run,
    under the strategy's scope: its log-variances carry over from phase to phase)."""
    if cfg.loss.balancing == "uncertainty":
        return UncertaintyWeighting(network, task_weights(cfg), task_options(cfg), cfg.loss.label_smoothing)
    return network


def task_weights(cfg):
    """{task: loss weight} of the model's tasks (a task the config does not weigh weighs 1)."""
    return {t: cfg.loss_weight(t) for t in cfg.model.tasks}


def task_options(cfg):
    """The options of the model's task kinds from the config's `loss` section (`tasks.options_from`)."""
    return tasks.options_from(cfg.model.tasks, cfg.loss)


def static_loss_weights(cfg, outputs):
    """{output: loss weight}: the configured task weights, spread over the task's outputs."""
    return output_loss_weights(outputs, task_weights(cfg), task_options(cfg))


def loss_setup(cfg, outputs):
    """(losses, loss_weights) by output name: what "static" balancing compiles."""
    return head_losses(outputs, cfg.loss.label_smoothing), static_loss_weights(cfg, outputs)


def compile_for_phase(cfg, model, phase):
    """Freeze what the phase and the loss weights say, then compile (trainable takes effect only
    at compile). A task with weight 0 has its head frozen, so nothing changes its weights.
    `model` is what `trained_model` returns; an UncertaintyWeighting computes its own loss."""
    network = network_of(model)
    set_backbone_trainable(network, phase != "heads")
    outputs = list(network.output_names)
    weights = task_weights(cfg)
    for layer in network.layers:
        task = tasks.task_of_layer(layer.name)
        if task:
            layer.trainable = weights.get(task, 1.0) > 0 and layer.name not in tasks.get(task).frozen_layers
    static_loss = {}
    if not isinstance(model, UncertaintyWeighting):
        losses, loss_weights = loss_setup(cfg, outputs)
        static_loss = dict(loss=losses, loss_weights=loss_weights)
    model.compile(optimizer=make_optimizer(cfg.optimizer), weighted_metrics=head_metrics(outputs, cfg.loss.label_smoothing),
                  **static_loss)


def make_optimizer(opt_cfg):
    kwargs = {"learning_rate": opt_cfg.lr}
    if opt_cfg.clipnorm:
        kwargs["clipnorm"] = opt_cfg.clipnorm
    if opt_cfg.weight_decay:
        kwargs["weight_decay"] = opt_cfg.weight_decay
    if opt_cfg.name == "sgd":
        return keras.optimizers.SGD(momentum=opt_cfg.momentum, **kwargs)
    if opt_cfg.name == "adamw":
        kwargs.setdefault("weight_decay", 1e-4)
        return keras.optimizers.AdamW(**kwargs)
    return keras.optimizers.Adam(**kwargs)


def learning_rate_at(opt_cfg, epoch, epochs):
    """Epoch-level schedule (so a resumed run continues the same curve): warm-up, then decay."""
    if opt_cfg.warmup_epochs and epoch < opt_cfg.warmup_epochs:
        return opt_cfg.lr * (epoch + 1) / (opt_cfg.warmup_epochs + 1)
    if opt_cfg.schedule == "step":
        return opt_cfg.lr * opt_cfg.step_gamma ** (epoch // max(1, opt_cfg.step_every))
    if opt_cfg.schedule == "cosine":
        span = max(1, epochs - opt_cfg.warmup_epochs)
        progress = (epoch - opt_cfg.warmup_epochs) / span
        return opt_cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return opt_cfg.lr

"""A model file's forward pass, compiled for prediction: `compiled_forward(model)(crops)` gives
what `model(crops, training=False)` gives, at less cost per call (prediction, serving and
evaluation alike).

Eager calls of a deep functional model on a CPU spend more time dispatching ops than computing
(ResNet-18, one face: ~87 ms eager), so the pass is traced. A model that averages test-time views
(`facenet_mtl.models.flip_average`: the shipped model runs one network over ten views of each
face and averages the ten answers) is taken apart into its views and its network
(`view_parts`), read from the file's own layer graph: the views of a batch are stacked into one
batch, the network runs once over it, and each output is averaged over the views as the model's
`Average` layers average them, in the same order. The same numbers as the model's own call
within float32's rounding (to the bit for the shipped model at 32 faces; a batch ten times larger
may take other kernels), traced in ~1 s (the whole model as Keras traces it holds ten copies of
the network: 4.5 s), and less time a face than the network traced and called once per view with
the views eager around it (2-core AMD EPYC, 32 faces a call, three alternating runs: 7.8-9.4 vs
10.0-11.7 ms a face).
"""
from __future__ import annotations

import functools


def compiled_forward(model, whole=False):
    """`model`'s inference call (`model(x, training=False)` for a float32 NHWC batch), compiled.

    A test-time-views model: its views in one batch through its network, traced once
    (`view_parts`). Another model with nested networks: each network traced once and the layers
    around them run eagerly (~45 ms a call more than tracing it whole, but seconds less to start),
    or with `whole` the whole model traced, for a long-lived process. Anything else that is not a
    Keras model (a SavedModel's endpoint) is called as it is.

    Traced by its views or whole, the pass holds no reference to `model` itself: its caller keeps
    the model, and a cache keyed weakly by the model can hold the pass."""
    import weakref

    import keras
    import tensorflow as tf

    if not isinstance(model, keras.Model):
        return lambda x: model(x, training=False)
    parts = view_parts(model)
    if parts is not None:
        return _views_as_one_batch(*parts)
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if nested and not whole and all(_trace_inference_calls(network) for network in nested):
        return functools.partial(model, training=False)
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    held = weakref.ref(model)
    return tf.function(lambda x: held()(x, training=False), input_signature=[spec], reduce_retracing=True,
                       autograph=False)


def view_parts(model):
    """`(views, network, averaged)` for a model whose every output is an `Average` of one nested
    network's same output over that network's calls, each call on one view of the model's one
    input: `views` a Keras model from the input to the views (in the order of the network's
    calls), `network` the nested network, `averaged` {output name: (the name of the network's
    output it averages, the network's calls in the order the `Average` adds them)}. None for any other model (it is then run
    as it is: nothing here is assumed of a file that does not have this shape)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1 or len(model.inputs) != 1:
        return None
    network = nested[0]
    try:
        calls = network._inbound_nodes
        if len(calls) < 2 or any(len(node.input_tensors) != 1 for node in calls):
            return None
        averaged = {}
        inner = _output_names(network)  # in the order a call's outputs are numbered
        for name, tensor in zip(_output_names(model), model.outputs):
            layer = tensor._keras_history[0]
            if type(layer) is not keras.layers.Average or len(layer._inbound_nodes) != 1:
                return None
            terms = [term._keras_history for term in layer._inbound_nodes[0].input_tensors]
            indices = {index for _, _, index in terms}
            order = [node for _, node, _ in terms]
            if any(source is not network for source, _, _ in terms) or len(indices) != 1 \
                    or sorted(order) != list(range(len(calls))):
                return None
            averaged[name] = (inner[indices.pop()], order)
        views = keras.Model(model.inputs[0], [node.input_tensors[0] for node in calls], name=f"{model.name}_views")
    except (AttributeError, TypeError, ValueError):  # a Keras whose graph reads otherwise: run the model
        return None
    return views, network, averaged


def _output_names(model):
    output = model.output
    if isinstance(output, dict):
        order = {id(tensor): name for name, tensor in output.items()}
        return [order[id(tensor)] for tensor in model.outputs]
    return list(model.output_names)


def _views_as_one_batch(views, network, averaged):
    """The traced pass of a `view_parts` model: views stacked, the network once, the averages as
    Keras' `Average` computes them (the terms added in order, the sum divided by their count)."""
    import tensorflow as tf

    count = len(network._inbound_nodes)
    names = _output_names(network)

    def forward(x):
        seen = views(x, training=False)
        answers = network(tf.concat(seen, axis=0), training=False)
        if not isinstance(answers, dict):
            answers = dict(zip(names, tf.nest.flatten(answers)))
        result = {}
        for name, (inner, order) in averaged.items():
            per_view = tf.split(answers[inner], count, axis=0)
            total = per_view[order[0]]
            for call in order[1:]:
                total = total + per_view[call]
            result[name] = total / len(order)
        return result

    spec = tf.TensorSpec([None, *views.input_shape[1:]], tf.float32)
    return tf.function(forward, input_signature=[spec], reduce_retracing=True, autograph=False)


def _trace_inference_calls(network):
    """Make `network`'s inference calls (training falsy, no mask) run one traced graph; training
    calls keep its own `call`. False (and nothing changed) for a network of several inputs."""
    import tensorflow as tf

    if isinstance(network.input_shape, list):
        return False
    if getattr(network.call, "traced_for_inference", False):  # another predictor did it
        return True
    call = network.call
    traced = tf.function(lambda x: call(x, training=False), autograph=False,
                         input_signature=[tf.TensorSpec([None, *network.input_shape[1:]], tf.float32)])

    def inference_call(inputs, training=None, mask=None):
        if training or mask is not None:
            return call(inputs, training=training, mask=mask)
        return traced(inputs)

    inference_call.traced_for_inference = True
    network.call = inference_call
    return True

"""The multi-task face model: preprocessing, a backbone, and one head per task, as a plain keras.Model.

    image (S, S, 3) RGB 0-255  ->  preprocessing layers  ->  "backbone" (a nested Model)
        ->  Dropout  ->  heads  ->  {"age", "age_probs", "gender", "emotion", "smile"}

Only built-in layers, so the model saves to `.h5` or `.keras` and loads with plain
`keras.models.load_model(path)`, no facenet_mtl import, no custom objects. Nothing is kept in
Python attributes (they would not survive saving): the tasks are read back from the output names
(`model_tasks`) and the input size from `model.input_shape`.

>>> model = build_model("compact", tasks=("emotion", "age"), input_size=48,
...                     backbone_args={"widths": (8, 16), "stem_width": 8})
>>> model_tasks(model)
('age', 'emotion')
>>> output_names_for(("emotion", "age"))
('age', 'age_probs', 'emotion')
>>> model.input_shape
(None, 48, 48, 3)
"""
import keras

from facenet_mtl import tasks as task_registry
from facenet_mtl.models import heads
from facenet_mtl.models.backbones import create_backbone, get_backbone_spec
from facenet_mtl.models.preprocessing import preprocessing_layers

BACKBONE_LAYER = "backbone"
INPUT_NAME = "image"


def build_model(backbone="resnet18", tasks=(), input_size=None, backbone_args=None,
                dropout=0.0, head_units=0, name="facenet_mtl"):
    """A functional model from RGB 0-255 images to a dict of task outputs.

    `input_size` is the side of the square input in pixels (required: the config owns it);
    `backbone` is a registered name (`facenet_mtl.models.backbones.BACKBONES`), built with
    `backbone_args`; `tasks` are registered names (`facenet_mtl.tasks`), in any order (outputs
    follow the registry's order); `dropout` is applied to the features and, with `head_units`, in the heads.
    """
    if input_size is None:  # no default here: the size is the config's (model.input_size) or the file's
        raise TypeError("build_model needs input_size, the side of the model's square face crop in pixels")
    tasks = ordered_tasks(tasks)
    spec = get_backbone_spec(backbone)

    # Layers.
    image = keras.Input((input_size, input_size, 3), name=INPUT_NAME)
    preprocessing = preprocessing_layers(spec.preprocessing)
    features_model = create_backbone(backbone, input_size, name=BACKBONE_LAYER, **(backbone_args or {}))

    # Functional graph.
    x = image
    for layer in preprocessing:
        x = layer(x)
    features = features_model(x)
    if dropout:
        features = keras.layers.Dropout(dropout, name="features_dropout")(features)
    outputs = {}
    for task in tasks:
        outputs.update(heads.task_head(features, task, head_units=head_units, dropout=dropout))
    model = keras.Model(image, outputs, name=name)

    return model


def ordered_tasks(tasks):
    """`tasks` validated, deduplicated and in the registry's order."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    known = task_registry.names()
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {', '.join(known)}")
    if not tasks:
        raise ValueError(f"a model needs at least one task; known: {', '.join(known)}")
    return task_registry.ordered(tasks)


def output_names_for(tasks):
    """The model's output names for `tasks`, in their fixed order (age, age_probs, gender, ...)."""
    return task_registry.output_names(ordered_tasks(tasks))


def model_tasks(model):
    """The tasks of a built or loaded model, read from its output names, in the registry's order."""
    return task_registry.tasks_of_outputs(model.output_names)


def set_backbone_trainable(model, trainable):
    """Freeze (False) or unfreeze (True) the backbone only; the heads are left as they are.

    A frozen backbone's BatchNorm layers run in inference mode (Keras 3 does this for layers
    with `trainable=False`), so the heads-first stage does not drift their statistics. Compile
    the model again afterwards for the change to take effect in `fit`.
    """
    model.get_layer(BACKBONE_LAYER).trainable = trainable


def transfer_weights(source_model, target_model):
    """Copy the backbone and every weighted layer the two models share by name; return their names.

    For a finetune: the source's heads for tasks the target also has are copied, the target's
    new heads keep their fresh weights. The backbone is copied layer by layer, by name, so
    `source_model` may be freshly built or loaded from a file, flip-averaged or not. A shared
    layer whose weights do not match (another architecture, width or class count) raises
    ValueError naming it.
    """
    source_layers = {layer.name: layer for layer in inner_network(source_model).layers}
    copied = []
    for target in target_model.layers:
        source = source_layers.get(target.name)
        if source is None or not target.weights:
            continue
        if target.name == BACKBONE_LAYER:
            _copy_model(source, target)
        else:
            _copy_layer(source, target, target.name)
        copied.append(target.name)
    return copied


def inner_network(model):
    """The network that holds the backbone: `model` itself, or the one model nested in it that
    does (a flip-averaged export, `facenet_mtl.models.flip_average`)."""
    if BACKBONE_LAYER in {layer.name for layer in model.layers}:
        return model
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)
              and BACKBONE_LAYER in {inner.name for inner in layer.layers}]
    return nested[0] if len(nested) == 1 else model


def _copy_model(source, target):
    source_leaves, target_leaves = _weighted_leaves(source), _weighted_leaves(target)
    if source_leaves.keys() != target_leaves.keys():
        missing = sorted(target_leaves.keys() - source_leaves.keys())
        extra = sorted(source_leaves.keys() - target_leaves.keys())
        raise ValueError(f"cannot copy layer '{target.name}': different architectures "
                         f"(only in target: {missing[:5]}, only in source: {extra[:5]})")
    for path, layer in target_leaves.items():
        _copy_layer(source_leaves[path], layer, path)


def _copy_layer(source, target, path):
    source_shapes = [tuple(w.shape) for w in source.weights]
    target_shapes = [tuple(w.shape) for w in target.weights]
    if source_shapes != target_shapes:
        raise ValueError(f"cannot copy layer '{path}': weight shapes {source_shapes} in the source, "
                         f"{target_shapes} in the target")
    target.set_weights(source.get_weights())


def _weighted_leaves(model, prefix=""):
    """{"backbone/conv1": layer} for every layer with weights, nested models unrolled."""
    leaves = {}
    for layer in model.layers:
        path = f"{prefix or model.name}/{layer.name}"
        if isinstance(layer, keras.Model):
            leaves.update(_weighted_leaves(layer, path))
        elif layer.weights:
            leaves[path] = layer
    return leaves

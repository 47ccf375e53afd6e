"""The classifier: pretrained backbones, the kernel's head, freezing, the upscale adapter, RGBY surgery, by-name weights.

Every model built here is one chain of named layers::

    image (uint8 or float, 0..255) -> input_scale (x / 255) -> input_bn -> backbone
    -> head_conv (1x1, 32 filters, relu) -> [upscale_adapter] -> head_flatten -> head_dropout_1
    -> head_dense (1024, relu) -> head_dropout_2 -> predictions (28, sigmoid)

The names are the contract between stages: ``03_upscale`` builds a 512 px model whose layers
carry the same names (and, apart from ``upscale_adapter``, the same shapes) as the 224 px model of
``02_warmup_finetune``, and loads its weights by name from a legacy ``.h5`` file
(``save_weights`` / ``transfer_weights``).

BatchNormalization inside the backbone always runs in inference mode, as the Keras
fine-tuning guide prescribes: the backbone is called with ``training=False`` *and* its
BatchNormalization layers are kept non-trainable (in Keras 3 an outer ``fit`` overrides the
``training=False`` of a nested model call, while a non-trainable BatchNormalization layer always
uses its moving statistics). Only ``input_bn`` trains normally.
"""

from __future__ import annotations

import contextlib
import warnings
from functools import lru_cache
from pathlib import Path

import h5py
import keras
import numpy as np
from keras.src.legacy.saving import legacy_h5_format

from hpa_utils import environment
from hpa_utils.files import atomic_write
from hpa_utils.labels import NUM_CLASSES

SMALL_FILTERS = (32, 64, 128, 256)  # small_cnn, the CPU demo's backbone
CHANNELS = {"rgb": 3, "rgby": 4}
ADAPTER_NAME = "upscale_adapter"


class WeightsError(ValueError):
    """A weights argument or weights file that cannot be used (missing, wrong format, nothing matched)."""


# ---------------------------------------------------------------------------------------------
# Argument checks


def _check_backbone(backbone) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r} is not supported; choose one of {sorted(BACKBONES)}")


def _check_channels(channels) -> None:
    if channels not in CHANNELS:
        raise ValueError(f"channels={channels!r} is not supported; choose one of {sorted(CHANNELS)}")


def _check_image_size(backbone: str, image_size, argument: str = "image_size") -> None:
    minimum = BACKBONES[backbone][1]
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(f"{argument}={image_size!r} must be an int (pixels)")
    if image_size < minimum:
        raise ValueError(f"{argument}={image_size}: {backbone} needs images of at least {minimum}x{minimum} pixels")


# ---------------------------------------------------------------------------------------------
# Backbones


def small_cnn(include_top: bool = False, weights=None, input_shape=(64, 64, 3)) -> keras.Model:
    """A plain CNN for CPU demos: 4 blocks of (3x3 conv, BN, ReLU) x 2 and a 2x2 max-pool (grid = side / 16).

    Same call as a keras.applications constructor (without a top). A ResNet50 trained from scratch
    learns little in the few minutes a CPU stage has; this backbone learns the embedded dataset in them.
    weights: None (random) or the path of a file saved from a "small" backbone; no ImageNet weights exist.
    """
    if include_top:
        raise ValueError("small_cnn has no classification top; the head is build_model's")
    if weights == "imagenet":
        raise WeightsError("weights='imagenet': the small backbone has none; use 'none' (random) or a weights file")
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in enumerate(SMALL_FILTERS, start=1):
        for step in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{step}")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{step}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{step}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    model = keras.Model(inputs, x, name="small_cnn")
    if weights is not None:
        model.load_weights(weights)
    return model


# name -> (constructor, called as keras.applications' are; smallest input side it accepts;
#          the weights file it loads: ImageNet "notop" weights as Keras and Kaggle datasets ship them)
BACKBONES = {
    "resnet50": (keras.applications.ResNet50, 32, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "inceptionv3": (keras.applications.InceptionV3, 75, "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "densenet121": (keras.applications.DenseNet121, 32, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "small": (small_cnn, 16, "a file saved by save_weights from a 'small' backbone"),
}


def _pretrained_backbone(backbone: str, image_size: int, weights) -> keras.Model:
    """The 3-channel backbone (include_top=False) with the requested weights."""
    constructor, _, notop_file = BACKBONES[backbone]
    shape = (image_size, image_size, 3)
    if weights is None or weights == "none":
        return constructor(include_top=False, weights=None, input_shape=shape)
    if weights == "imagenet":
        try:
            return constructor(include_top=False, weights="imagenet", input_shape=shape)
        except WeightsError:  # a backbone that has no ImageNet weights says so itself
            raise
        except Exception as error:  # Keras raises a bare Exception when the download fails
            raise WeightsError(
                f"could not get the ImageNet weights of {backbone} ({error}). Without internet, pass "
                f"weights=<path to {notop_file}> (for example from a Kaggle dataset of Keras "
                "pretrained models), or weights='none' for random initialisation."
            ) from None
    if not isinstance(weights, (str, Path)):
        raise WeightsError(f"weights={weights!r}: expected 'imagenet', 'none' or the path of a weights file")
    try:  # on Kaggle a file name is looked for in every attached dataset
        path = environment.resolve_input_file(str(weights), "weights")
    except FileNotFoundError as error:
        raise WeightsError(f"{error}\n(expected 'imagenet', 'none' or the path of a weights file such as "
                           f"{notop_file})") from None
    try:
        return constructor(include_top=False, weights=str(path), input_shape=shape)
    except Exception as error:
        raise WeightsError(
            f"{path}: could not load as {backbone} weights without the top ({error}); "
            f"expected a file like {notop_file}"
        ) from None


def _freeze_batch_norm(model: keras.Model) -> None:
    """Make every BatchNormalization layer inside ``model`` non-trainable (inference mode)."""
    for layer in _walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _quicken_batch_norm(model: keras.Model, momentum: float = 0.9) -> None:
    """Let the moving statistics of a backbone trained from scratch follow its batches within tens of steps.

    With Keras' default momentum (0.99) they need hundreds of steps to leave their initial values, and
    until then the model in inference mode (validation, prediction) gives the same output for every image.
    """
    for layer in _walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _walk_layers(layer):
    """``layer`` and all layers nested in it, parents before children."""
    yield layer
    if isinstance(layer, keras.Model):
        for child in layer.layers:
            yield from _walk_layers(child)


@lru_cache(maxsize=None)
def feature_grid(backbone: str, image_size: int) -> int:
    """Side of the backbone's output feature map for square inputs of ``image_size`` pixels.

    Read from the shape of a real (randomly initialised) backbone, cached per (backbone, size).
    """
    _check_backbone(backbone)
    _check_image_size(backbone, image_size)
    model = BACKBONES[backbone][0](include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    return int(model.output.shape[1])


def adapter_kernel_and_stride(source_grid: int, target_grid: int) -> tuple[int, int]:
    """(kernel, stride) of a 'valid' convolution that maps a source_grid side to exactly target_grid.

    stride = source_grid // target_grid and kernel = source_grid - stride * (target_grid - 1): the
    output side is then exactly target_grid and kernel >= stride, so every position of the large
    grid is seen (16 -> 7 gives kernel 4, stride 2; 14 -> 7 gives kernel 2, stride 2).
    Raises ValueError when target_grid is larger than source_grid (the adapter only shrinks).
    """
    if target_grid < 1 or source_grid < 1:
        raise ValueError(f"grid sides must be positive, got source {source_grid} and target {target_grid}")
    if target_grid > source_grid:
        raise ValueError(
            f"the upscale adapter shrinks a feature grid; cannot map {source_grid}x{source_grid} "
            f"to the larger {target_grid}x{target_grid}"
        )
    stride = max(1, source_grid // target_grid)
    kernel = source_grid - stride * (target_grid - 1)
    return kernel, stride


def upscale_adapter_shape(backbone: str, source_image_size: int, image_size: int) -> tuple[int, int]:
    """(kernel, stride) of the adapter that maps the grid at ``image_size`` to the grid at ``source_image_size``.

    ``source_image_size`` is the size the weights were trained at (224), ``image_size`` the new,
    larger size (512). Raises ValueError when the new grid is smaller than the source grid.
    """
    _check_backbone(backbone)
    _check_image_size(backbone, source_image_size, "source_image_size")
    _check_image_size(backbone, image_size)
    large, small = feature_grid(backbone, image_size), feature_grid(backbone, source_image_size)
    if small > large:
        raise ValueError(
            f"{backbone}: image_size={image_size} gives a {large}x{large} feature grid, smaller than the "
            f"{small}x{small} grid of source_image_size={source_image_size}; the adapter only shrinks"
        )
    return adapter_kernel_and_stride(large, small)


# ---------------------------------------------------------------------------------------------
# RGBY surgery


def _expand_kernel(kernel: np.ndarray) -> np.ndarray:
    """Add a yellow input channel to a (kh, kw, 3, filters) kernel: a copy of the red channel's kernel."""
    return np.concatenate([kernel, kernel[:, :, :1, :]], axis=2)


def rgby_backbone(backbone: keras.Model) -> keras.Model:
    """A 4-channel copy of a 3-channel backbone: same layers and weights, first convolution widened.

    The rule for the new yellow (endoplasmic reticulum) input channel: its filter weights are a copy
    of the red (microtubules) channel's. Both stains mark cytoplasmic structures with similar
    intensity statistics, so the pretrained first-layer filters respond to yellow as they do to red;
    and an all-zero yellow channel leaves every output exactly as in the 3-channel backbone.
    The copy is built with random weights (weights=None semantics) and then every weight is copied.
    """
    height, width, channels = backbone.input.shape[1:]
    if channels != 3:
        raise ValueError(f"rgby_backbone expects a 3-channel backbone, got input shape {backbone.input.shape}")
    expanded = keras.models.clone_model(backbone, input_tensors=keras.Input((height, width, 4)))
    widened = []
    for old, new in zip(backbone.layers, expanded.layers):
        if old.name != new.name and not isinstance(old, keras.layers.InputLayer):
            raise ValueError(f"rgby_backbone: layer order differs after cloning ({old.name} vs {new.name})")
        values = []
        for old_value, new_variable in zip(old.get_weights(), new.weights):
            if old_value.shape != tuple(new_variable.shape):
                expected = old_value.ndim == 4 and old_value.shape[2] == 3 and tuple(new_variable.shape)[2] == 4
                if not expected:
                    raise ValueError(
                        f"rgby_backbone: unexpected shape change in layer {old.name}: "
                        f"{old_value.shape} -> {tuple(new_variable.shape)}"
                    )
                old_value = _expand_kernel(old_value)
                widened.append(old.name)
            values.append(old_value)
        new.set_weights(values)
        new.trainable = old.trainable
    if len(widened) != 1:
        raise ValueError(f"rgby_backbone: expected exactly one first convolution to widen, found {widened}")
    result = keras.Model(expanded.input, expanded.output, name=backbone.name)
    result.freeze_batch_norm = getattr(backbone, "freeze_batch_norm", True)
    return result


def rgby_from_rgb(model: keras.Model) -> keras.Model:
    """A 4-channel (RGBY) copy of a 3-channel model built by ``build_model``, with every weight copied.

    The backbone's first convolution gets the yellow channel by ``rgby_backbone``'s rule (copy of
    red); ``input_bn`` gives yellow a copy of red's scale, offset and statistics. With an all-zero
    yellow channel and a fresh ``input_bn`` the new model predicts exactly what the old one does.
    """
    if model.input.shape[-1] != 3:
        raise ValueError(f"rgby_from_rgb expects a 3-channel model, got input shape {model.input.shape}")
    height, width = model.input.shape[1:3]
    inputs = keras.Input((height, width, 4), name=model.layers[0].name)
    x = inputs
    for layer in model.layers[1:]:
        if layer.name == "backbone":
            new = rgby_backbone(layer)
            x = new(x, training=False)
            continue
        new = layer.__class__.from_config(layer.get_config())
        x = new(x)
        values = layer.get_weights()
        if layer.name == "input_bn":
            values = [np.concatenate([value, value[:1]]) for value in values]
        new.set_weights(values)
        new.trainable = layer.trainable
    return keras.Model(inputs, x, name=model.name.replace("_rgb", "_rgby"))


# ---------------------------------------------------------------------------------------------
# The model


def build_model(
    backbone: str = "resnet50",
    image_size: int = 224,
    channels: str = "rgb",
    weights="none",
    dropout: float = 0.5,
    head_filters: int = 32,
    dense_units: int = 1024,
    source_image_size: int | None = None,
    freeze_batch_norm: bool | None = None,
) -> keras.Model:
    """The kernel's classifier: input scaling and BatchNormalization, a backbone, the 1x1-conv head.

    backbone: "resnet50", "inceptionv3" or "densenet121" (keras.applications, include_top=False),
        or "small" (``small_cnn``, for CPU demos).
    channels: "rgb" (3 input channels) or "rgby" (4; see ``rgby_backbone`` for the yellow rule).
    weights: "imagenet" (downloaded by Keras), "none" (random) or the path of the backbone's
        ImageNet "notop" weights file, e.g. resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5.
    source_image_size: the size the weights to be transferred were trained at; when given and
        different from image_size, an ``upscale_adapter`` Conv2D maps the larger feature grid back
        to the source grid, so that ``head_dense`` keeps its shape. It starts as a per-channel
        average over its window (the head first sees a pooled version of the larger map).
    freeze_batch_norm: keep the backbone's BatchNormalization layers in inference mode (their moving
        statistics fixed); default: when the weights are pretrained. A backbone trained from scratch
        (weights "none") needs them to learn, so they train with it.
    The input takes uint8 or float images with values 0..255 (cast and scaled inside).
    Raises ValueError (WeightsError for weights) naming the bad argument.
    """
    _check_backbone(backbone)
    _check_channels(channels)
    _check_image_size(backbone, image_size)
    adapter = None
    if source_image_size is not None and source_image_size != image_size:
        adapter = upscale_adapter_shape(backbone, source_image_size, image_size)
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout!r} must be in [0, 1)")

    pretrained = _pretrained_backbone(backbone, image_size, weights)
    if freeze_batch_norm is None:
        freeze_batch_norm = weights not in (None, "none")
    if freeze_batch_norm:
        _freeze_batch_norm(pretrained)
    else:
        _quicken_batch_norm(pretrained)
    backbone_model = keras.Model(pretrained.input, pretrained.output, name="backbone")
    backbone_model.freeze_batch_norm = bool(freeze_batch_norm)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="input_scale")(inputs)
    # Moving statistics: set from the data by set_input_statistics; momentum 0.9, not 0.99, so that without
    # that they still reach dark images' values (far from the initial 0 and 1) within ~100 steps, not ~1000.
    x = keras.layers.BatchNormalization(momentum=0.9, name="input_bn")(x)
    x = backbone_model(x, training=False)
    x = keras.layers.Conv2D(head_filters, 1, activation="relu", name="head_conv")(x)
    if adapter is not None:
        kernel, stride = adapter
        adapter_layer = keras.layers.Conv2D(
            head_filters, kernel, strides=stride, activation="relu", name=ADAPTER_NAME
        )
        x = adapter_layer(x)
        average = np.zeros((kernel, kernel, head_filters, head_filters), dtype="float32")
        average[:, :, np.arange(head_filters), np.arange(head_filters)] = 1.0 / (kernel * kernel)
        adapter_layer.set_weights([average, np.zeros(head_filters, dtype="float32")])
    x = keras.layers.Flatten(name="head_flatten")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout_1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout_2")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="sigmoid", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"{backbone}_{image_size}_rgb")
    return rgby_from_rgb(model) if channels == "rgby" else model


def set_input_statistics(model: keras.Model, images, indices=None, max_images: int = 1000) -> np.ndarray:
    """Start ``input_bn``'s moving mean and variance at the images' per-channel values (of pixels / 255).

    Without this they start at (0, 1), far from dark microscope channels (mean ~0.06, variance
    ~0.005), and a model validated before they catch up sees images scaled ~10x too weakly.
    images: uint8 (n, side, side, channels), e.g. the cache; indices: which rows (default all), of which
    at most max_images, evenly spaced, are read. Returns the (mean, variance) rows that were set.
    """
    rows = np.arange(len(images)) if indices is None else np.asarray(indices)
    if len(rows) == 0:
        raise ValueError("set_input_statistics needs at least one image")
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), max_images)).astype(int)]
    layer = model.get_layer("input_bn")
    total = total_squares = 0.0
    for start in range(0, len(rows), 64):
        chunk = np.asarray(images[rows[start:start + 64]], dtype=np.float64) / 255.0
        flat = chunk.reshape(-1, chunk.shape[-1])
        total = total + flat.sum(axis=0)
        total_squares = total_squares + np.square(flat).sum(axis=0)
    count = len(rows) * np.prod(np.shape(images)[1:3])
    mean = total / count
    variance = np.maximum(total_squares / count - np.square(mean), 0.0)
    if mean.shape != tuple(layer.moving_mean.shape):
        raise ValueError(f"images have {mean.shape[0]} channels but the model takes {layer.moving_mean.shape[0]}")
    gamma, beta, _, _ = layer.get_weights()
    layer.set_weights([gamma, beta, mean.astype("float32"), variance.astype("float32")])
    return np.stack([mean, variance])


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze (False) or unfreeze (True) the "backbone" layer; the caller must recompile afterwards.

    Where the backbone's weights are pretrained (``build_model(freeze_batch_norm=...)``), its
    BatchNormalization layers stay non-trainable either way, so they keep running in
    inference mode with their pretrained moving statistics: fine-tuning batches are small (noisy
    statistics would replace ImageNet's), and switching BatchNormalization to training mode when
    unfreezing would shift every activation the head has just learned from and undo the warm-up.
    ``input_bn`` is outside the backbone and trains normally.
    """
    backbone = model.get_layer("backbone")
    backbone.trainable = bool(trainable)
    if getattr(backbone, "freeze_batch_norm", True):
        _freeze_batch_norm(backbone)


# ---------------------------------------------------------------------------------------------
# Weights files


@contextlib.contextmanager
def _canonical_weight_order(model: keras.Model):
    """Temporarily put the model in the trainable state ``build_model`` returns, fixing the weight order.

    The legacy .h5 format stores each layer's weights as trainable + non-trainable, so the order
    within the nested backbone depends on what is frozen, and a plain by-name load into a model
    frozen differently assigns arrays to the wrong variables. Files are therefore written (and
    read by ``transfer_weights``) in one state: everything trainable except the backbone's
    BatchNormalization layers, which is how a freshly built model is.
    """
    states = [(layer, layer.trainable) for layer in _walk_layers(model)]
    for layer, _ in states:  # one by one: a Keras 3 Functional does not pass the flag to its layers
        layer.trainable = True
    for layer in model.layers:
        if layer.name == "backbone":
            _freeze_batch_norm(layer)
    try:
        yield
    finally:
        for layer, trainable in states:  # parents first, in case a parent's setter resets its children
            layer.trainable = trainable


def _check_legacy_path(path) -> Path:
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".weights.h5") or not name.endswith((".h5", ".hdf5")):
        raise WeightsError(
            f"{path}: legacy weights files must end in .h5 or .hdf5 but not .weights.h5 "
            "(Keras reads a .weights.h5 name as its own format, which cannot load by name)"
        )
    return path


def save_weights(model: keras.Model, path) -> Path:
    """Write the model's weights as a legacy (Keras 2 style) HDF5 file, atomically.

    The file loads by layer name: ``transfer_weights(model, path)`` (which checks what matched), or
    plain ``model.load_weights(path, by_name=True, skip_mismatch=True)`` into a model as
    ``build_model`` returns it (backbone not frozen). Whatever is frozen when saving, the file is
    written in that state's weight order. ``path`` must end in .h5 (not .weights.h5).
    """
    path = _check_legacy_path(path)
    with atomic_write(path) as temporary, _canonical_weight_order(model):
        with h5py.File(temporary, "w") as file:
            legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return path


def _read_legacy_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> list of arrays (legacy order) from a legacy .h5 weights file."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with h5py.File(path, "r") as file:
            group = file
            if "layer_names" not in file.attrs and "model_weights" in file:
                group = file["model_weights"]
            if "layer_names" not in group.attrs:
                raise WeightsError(
                    f"{path}: not a legacy Keras .h5 weights file (no layer_names); "
                    "a .weights.h5 checkpoint loads with load_weights into the same architecture"
                )
            names = legacy_h5_format.load_attributes_from_hdf5_group(group, "layer_names")
            return {
                str(name): legacy_h5_format.load_subset_weights_from_hdf5_group(group[name]) for name in names
            }
    except OSError as error:
        raise WeightsError(f"{path}: cannot read as HDF5 ({error})") from None


def _stored_names(stored: dict) -> list[str]:
    return sorted(name for name, arrays in stored.items() if arrays)


def _weighted_layer_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def transfer_weights(model: keras.Model, path, min_matched=None) -> list[str]:
    """Load a legacy .h5 file by layer name and return the names of the layers that got its values.

    Layers whose shapes differ (the ``upscale_adapter``) are skipped. Keras silently loads nothing
    when names don't match, so afterwards every layer is compared with the file's arrays.
    min_matched: how many layers must match, or the list of layer names that must; by default
        every layer with weights except "upscale_adapter".
    Raises WeightsError when the file is missing or unusable, or too few layers matched.
    """
    path = Path(path)
    stored = _read_legacy_weights(path)
    if min_matched is None:
        min_matched = [name for name in _weighted_layer_names(model) if name != ADAPTER_NAME]
    with _canonical_weight_order(model):
        with h5py.File(path, "r") as file:
            group = file["model_weights"] if "layer_names" not in file.attrs and "model_weights" in file else file
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Skipping loading")
                legacy_h5_format.load_weights_from_hdf5_group_by_name(group, model, skip_mismatch=True)
        matched = []
        for layer in model.layers:
            arrays = stored.get(layer.name)
            current = [np.asarray(variable) for variable in legacy_h5_format._legacy_weights(layer)]
            if arrays is None or not current or len(arrays) != len(current):
                continue
            if all(a.shape == c.shape and np.array_equal(a, c) for a, c in zip(arrays, current)):
                matched.append(layer.name)
    if isinstance(min_matched, int):
        if len(matched) < min_matched:
            raise WeightsError(
                f"{path}: only {len(matched)} layer(s) of {model.name} got weights from the file "
                f"({matched}), at least {min_matched} required; the file has weights for {_stored_names(stored)}"
            )
    else:
        missing = [name for name in min_matched if name not in matched]
        if missing:
            raise WeightsError(
                f"{path}: layers {missing} of {model.name} got no weights from the file (names or "
                f"shapes differ); the file has weights for {_stored_names(stored)}, matched {matched}"
            )
    return matched


def load_weights(model: keras.Model, path) -> list[str]:
    """Reload weights saved from the same architecture (a best checkpoint, a finished stage).

    A ``.weights.h5`` file (Keras 3 format, as ModelCheckpoint writes) loads with Keras' own loader;
    a legacy ``.h5`` file must fill every layer with weights. Returns the names of loaded layers.
    """
    path = Path(path)
    if path.name.lower().endswith(".weights.h5"):
        if not path.is_file():
            raise WeightsError(f"{path}: weights file not found")
        try:
            with warnings.catch_warnings():  # the optimizer state of another phase does not fit; weights do
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(path)
        except ValueError as error:
            raise WeightsError(f"{path}: does not fit {model.name} ({error})") from None
        return _weighted_layer_names(model)
    return transfer_weights(model, path, min_matched=_weighted_layer_names(model))

"""The classifier: input scaling and BatchNormalization, backbone, the public kernel's head; freezing."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from hpa_utils import errors
from hpa_utils.dataset.labels import NUM_CLASSES
from hpa_utils.models.backbones import (
    backbone_features,
    check_backbone,
    check_channels,
    check_image_size,
    freeze_batch_normalization,
    quicken_batch_normalization,
)
from hpa_utils.models.surgery import ADAPTER_NAME, HEAD_FILTERS, rgby_from_rgb

# build_model's own layers; every other layer of its models is the backbone's (``backbone_layers``)
OWN_LAYERS = ("image", "input_scale", "input_bn", "head_conv", ADAPTER_NAME, "head_flatten", "head_dropout_1")
OWN_LAYERS += ("head_dense", "head_dropout_2", "predictions")


def backbone_layers(model: keras.Model) -> list:
    """The backbone's layers of a model ``build_model`` built: each is a layer of the model itself (no nested
    model), so a weights file by layer name holds each one's weights under its own name."""
    return [layer for layer in model.layers if layer.name not in OWN_LAYERS]


BATCH_NORM_SETTINGS = ("auto", "yes", "no")  # FREEZE_BATCH_NORM


def is_pretrained(weights) -> bool:
    """Whether a backbone built with ``weights`` starts from trained weights (``"none"``: random)."""
    return weights not in (None, "none")


def batch_norm_frozen(setting: str, weights, *, upstream: bool | None = None) -> bool:
    """FREEZE_BATCH_NORM: whether the backbone's BatchNormalization layers stay in inference mode.

    "yes": frozen, their moving statistics kept (keras.io's fine-tuning guide; since TensorFlow 2.0 what a
    BatchNormalization layer set ``trainable=False`` does). "no": they train with the backbone, normalising each
    batch by its own statistics (what a layer set ``trainable=False`` still did in the Keras of 2018, the seed's,
    during fine-tuning). "auto": frozen for pretrained ``weights``, training from random ones; a stage that starts
    from an earlier stage's model passes that stage's choice as ``upstream``, and "auto" keeps it.
    Raises ValueError for another setting.
    """
    if setting not in BATCH_NORM_SETTINGS:
        raise errors.InputError(f"FREEZE_BATCH_NORM={setting!r} is not supported; choose one of {BATCH_NORM_SETTINGS}")
    if setting == "auto":
        return bool(upstream) if upstream is not None else is_pretrained(weights)
    return setting == "yes"


def _start_as_average(adapter: keras.layers.Conv2D) -> None:
    """Set the adapter's kernel to a per-channel average over its window (and no bias): the transferred head first
    sees a pooled version of the larger feature map rather than noise."""
    kernel = adapter.kernel
    size, _, channels, filters = kernel.shape
    if channels != filters:
        raise errors.InputError(
            f"{adapter.name} maps {channels} channels to {filters}; the adapter must keep the channels"
        )
    average = np.zeros(kernel.shape, dtype="float32")
    average[:, :, np.arange(filters), np.arange(filters)] = 1.0 / (size * kernel.shape[1])
    adapter.set_weights([average, np.zeros(filters, dtype="float32")])


def build_model(
    backbone: str = "resnet50",
    image_size: int = 224,
    channels: str = "rgb",
    weights="none",
    *,
    dropout: float = 0.5,
    head_filters: int = HEAD_FILTERS,
    dense_units: int = 1024,
    adapter: keras.layers.Conv2D | None = None,
    freeze_batch_norm: bool | None = None,
) -> keras.Model:
    """The public kernel's classifier: input scaling and BatchNormalization, a backbone, the 1x1-conv head.

    backbone: "resnet50", "inceptionv3" or "densenet121" (keras.applications, include_top=False),
        "efficientnet_lite0" (``efficientnet_lite``: ImageNet weights offline) or "small" (``small_cnn``).
    channels: "rgb" (3 input channels) or "rgby" (4; see ``rgby_from_rgb`` for the yellow rule).
    weights: "imagenet" (Keras downloads it; Lite0's comes in its pip package), "none" (random) or the path of
        the backbone's ImageNet "notop" file (resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5; Lite0's .pth).
    adapter: a Conv2D named ``upscale_adapter`` (notebook 03; ``models.upscale_adapter``) placed between
        ``head_conv`` and ``head_flatten``: at a larger image size it maps the larger feature grid back to the grid
        the weights were trained at, so that ``head_dense`` keeps its shape. It starts as a per-channel average
        over its window (the head first sees a pooled version of the larger map).
    freeze_batch_norm: keep the backbone's BatchNormalization layers in inference mode (their moving
        statistics fixed); default: when the weights are pretrained. A backbone trained from scratch
        (weights "none") needs them to learn, so they train with it.
    The input takes uint8 or float images with values 0..255 (cast and scaled inside). Layers follow Keras'
    global precision policy (``hardware.prepare``), except ``predictions``, which is float32 always.
    Raises ValueError (WeightsError for weights) naming the bad argument.
    """
    check_backbone(backbone)
    check_channels(channels)
    check_image_size(backbone, image_size)
    if adapter is not None and adapter.name != ADAPTER_NAME:
        raise errors.InputError(f"adapter is named {adapter.name!r}: name it {ADAPTER_NAME!r} (04 rebuilds it so)")
    if not 0 <= dropout < 1:
        raise errors.InputError(f"dropout={dropout!r} must be in [0, 1)")
    if freeze_batch_norm is None:
        freeze_batch_norm = is_pretrained(weights)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="input_scale")(inputs)
    # Moving statistics: set from the data by set_input_statistics; momentum 0.9, not 0.99, so that without
    # that they still reach dark images' values (far from the initial 0 and 1) within ~100 steps, not ~1000.
    x = keras.layers.BatchNormalization(momentum=0.9, name="input_bn")(x)
    x = backbone_features(backbone, x, weights)  # the backbone's layers, each a layer of this model
    x = keras.layers.Conv2D(head_filters, 1, activation="relu", name="head_conv")(x)
    if adapter is not None:
        x = adapter(x)
        _start_as_average(adapter)
    x = keras.layers.Flatten(name="head_flatten")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout_1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout_2")(x)
    # float32 whatever the precision policy: the sigmoid, and the loss computed from it, stay exact under mixed_float16
    outputs = keras.layers.Dense(NUM_CLASSES, activation="sigmoid", name="predictions", dtype="float32")(x)
    name = f"{backbone}_{image_size}_rgb"
    return classifier(inputs, outputs, channels, freeze_batch_norm=freeze_batch_norm, name=name)


def classifier(inputs, outputs, channels: str, *, freeze_batch_norm: bool, name: str = "classifier") -> keras.Model:
    """The model from its input and its predictions (the layers built between them, as ``build_model`` and notebook
    01 build them): the backbone's BatchNormalization frozen, in inference mode (``freeze_batch_normalization``), or
    training with its moving statistics quickened to momentum 0.9 (``quicken_batch_normalization``); for "rgby",
    the first convolution widened to a fourth input channel (``rgby_from_rgb``)."""
    check_channels(channels)
    model = keras.Model(inputs, outputs, name=name)
    (freeze_batch_normalization if freeze_batch_norm else quicken_batch_normalization)(backbone_layers(model))
    return rgby_from_rgb(model) if channels == "rgby" else model


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What ``build_model`` builds, as one record where it travels (04's folds): backbone, image size, channels,
    weights, dropout and the BatchNormalization choice."""

    backbone: str
    image_size: int
    channels: str = "rgb"
    weights: str = "none"
    dropout: float = 0.5
    freeze_batch_norm: bool | None = None

    def build(self) -> keras.Model:
        return build_model(**dataclasses.asdict(self))


def set_input_statistics(model: keras.Model, images, indices=None, max_images: int = 1000) -> np.ndarray:
    """Start ``input_bn``'s moving mean and variance at the images' per-channel values (of pixels / 255).

    Without this they start at (0, 1), far from dark microscope channels (mean ~0.06, variance
    ~0.005), and a model validated before they catch up sees images scaled ~10x too weakly.
    images: uint8 (n, side, side, channels), e.g. the cache; indices: which rows (default all), of which
    at most max_images, evenly spaced, are read. Returns the (mean, variance) rows that were set.
    """
    rows = np.arange(len(images)) if indices is None else np.asarray(indices)
    if len(rows) == 0:
        raise errors.InputError("set_input_statistics needs at least one image")
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), max_images)).astype(int)]
    layer = model.get_layer("input_bn")
    total = total_squares = 0.0
    for start in range(0, len(rows), 64):
        chunk = np.asarray(images[rows[start : start + 64]], dtype=np.float64) / 255.0
        flat = chunk.reshape(-1, chunk.shape[-1])
        total = total + flat.sum(axis=0)
        total_squares = total_squares + np.square(flat).sum(axis=0)
    count = len(rows) * np.prod(np.shape(images)[1:3])
    mean = total / count
    variance = np.maximum(total_squares / count - np.square(mean), 0.0)
    if mean.shape != tuple(layer.moving_mean.shape):
        raise errors.InputError(
            f"images have {mean.shape[0]} channels but the model takes {layer.moving_mean.shape[0]}"
        )
    gamma, beta, _, _ = layer.get_weights()
    layer.set_weights([gamma, beta, mean.astype("float32"), variance.astype("float32")])
    return np.stack([mean, variance])


def set_backbone_trainable(model: keras.Model, trainable: bool, *, freeze_batch_norm: bool) -> None:
    """Freeze (False) or unfreeze (True) the backbone's layers; the caller must recompile afterwards.

    ``freeze_batch_norm`` (True for pretrained weights, as ``build_model`` chose): the backbone's
    BatchNormalization layers stay non-trainable either way (why: ``backbones.freeze_batch_normalization``),
    so the caller says it at each switch. ``input_bn`` is outside the backbone and trains normally.
    """
    layers = backbone_layers(model)
    for layer in layers:
        layer.trainable = bool(trainable)
    if freeze_batch_norm:
        freeze_batch_normalization(layers)

"""Backbones: Keras applications and the small CPU CNN, their ImageNet weights, feature grids, BatchNormalization."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import keras

from hpa_utils import argument_values, environment
from hpa_utils.models import torch_file
from hpa_utils.models.efficientnet_lite import efficientnet_lite0

SMALL_FILTERS = (32, 64, 128, 256)  # small_cnn, the CPU demo's backbone

CHANNELS = {"rgb": 3, "rgby": 4}


class WeightsError(ValueError):
    """A weights argument or weights file that cannot be used (missing, wrong format, nothing matched)."""


def check_backbone(backbone) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r} is not supported; choose one of {sorted(BACKBONES)}")


def check_channels(channels) -> None:
    if channels not in CHANNELS:
        raise ValueError(f"channels={channels!r} is not supported; choose one of {sorted(CHANNELS)}")


def check_image_size(backbone: str, image_size, argument: str = "image_size") -> None:
    minimum = BACKBONES[backbone][1]
    if not argument_values.is_integer(image_size):
        raise ValueError(f"{argument}={image_size!r} must be an int (pixels)")
    if image_size < minimum:
        raise ValueError(f"{argument}={image_size}: {backbone} needs images of at least {minimum}x{minimum} pixels")


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
    "efficientnet_lite0": (efficientnet_lite0, 32, "efficientnet-lite0-57934424.pth (its pip package)"),
    "small": (small_cnn, 16, "a file saved by save_weights from a 'small' backbone"),
}


def backbone_network(backbone: str, image_size: int, weights) -> keras.Model:
    """The 3-channel backbone network (include_top=False): random weights for "none", else the requested ones."""
    constructor, _, notop_file = BACKBONES[backbone]
    shape = (image_size, image_size, 3)
    if weights is None or weights == "none":
        return constructor(include_top=False, weights=None, input_shape=shape)
    if weights == "imagenet":
        try:
            return constructor(include_top=False, weights="imagenet", input_shape=shape)
        except WeightsError:  # a backbone that has no ImageNet weights says so itself
            raise
        except (FileNotFoundError, torch_file.TorchFileError) as error:  # EfficientNet-Lite0's package or its file
            raise WeightsError(str(error)) from error
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
        raise WeightsError(
            f"{error}\n(expected 'imagenet', 'none' or the path of a weights file such as {notop_file})"
        ) from None
    try:
        return constructor(include_top=False, weights=str(path), input_shape=shape)
    except Exception as error:
        raise WeightsError(
            f"{path}: could not load as {backbone} weights without the top ({error}); expected a file like {notop_file}"
        ) from None


def freeze_batch_normalization(model: keras.Model) -> None:
    """Make every BatchNormalization layer inside ``model`` non-trainable (inference mode).

    Why a pretrained backbone's statistics are kept is the lesson of notebooks/02_warmup_finetune.ipynb
    (section 3). How: the backbone is also called with ``training=False``, but in Keras 3 an outer ``fit``
    overrides that for a nested model, while a non-trainable BatchNormalization layer always uses its
    moving statistics. A backbone trained from scratch has none to keep (``quicken_batch_normalization``).
    """
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def quicken_batch_normalization(model: keras.Model, momentum: float = 0.9) -> None:
    """Let the moving statistics of a backbone trained from scratch follow its batches within tens of steps.

    With Keras' default momentum (0.99) they need hundreds of steps to leave their initial values, and
    until then the model in inference mode (validation, prediction) gives the same output for every image.
    """
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def walk_layers(layer):
    """``layer`` and all layers nested in it, parents before children."""
    yield layer
    if isinstance(layer, keras.Model):
        for child in layer.layers:
            yield from walk_layers(child)


@lru_cache(maxsize=None)
def feature_grid(backbone: str, image_size: int) -> int:
    """Side of the backbone's output feature map for square inputs of ``image_size`` pixels.

    Read from the shape of a real (randomly initialised) backbone, cached per (backbone, size).
    """
    check_backbone(backbone)
    check_image_size(backbone, image_size)
    model = BACKBONES[backbone][0](include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    return int(model.output.shape[1])

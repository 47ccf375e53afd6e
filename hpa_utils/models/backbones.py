"""Backbones: Keras applications and the small CPU CNN, their ImageNet weights, feature grids, BatchNormalization."""

from __future__ import annotations

import functools
from pathlib import Path

import keras

from hpa_utils import errors
from hpa_utils.models import torch_file
from hpa_utils.models.efficientnet_lite import efficientnet_lite0
from hpa_utils.system import environment

SMALL_FILTERS = (32, 64, 128, 256)  # small_cnn, the CPU demo's backbone

CHANNELS = {"rgb": 3, "rgby": 4}


class WeightsError(errors.InputError):
    """A weights argument or weights file that cannot be used (missing, wrong format, nothing matched)."""


def check_backbone(backbone) -> None:
    if backbone not in BACKBONES:
        raise errors.InputError(f"backbone={backbone!r} is not supported; choose one of {sorted(BACKBONES)}")


def check_channels(channels) -> None:
    if channels not in CHANNELS:
        raise errors.InputError(f"channels={channels!r} is not supported; choose one of {sorted(CHANNELS)}")


def check_image_size(backbone: str, image_size, argument: str = "image_size") -> None:
    minimum = BACKBONES[backbone][1]
    if not errors.is_integer(image_size):
        raise errors.InputError(f"{argument}={image_size!r} must be an int (pixels)")
    if image_size < minimum:
        raise errors.InputError(
            f"{argument}={image_size}: {backbone} needs images of at least {minimum}x{minimum} pixels"
        )


def small_cnn(include_top: bool = False, weights=None, input_shape=(64, 64, 3), input_tensor=None) -> keras.Model:
    """A plain CNN for CPU demos: 4 blocks of (3x3 conv, BN, ReLU) x 2 and a 2x2 max-pool (grid = side / 16).

    Same call as a keras.applications constructor (without a top). A ResNet50 trained from scratch
    learns little in the few minutes a CPU stage has; this backbone learns the embedded dataset in them.
    weights: None (random) or the path of a file saved from a "small" backbone (without ``input_tensor``); no
    ImageNet weights exist.
    """
    if include_top:
        raise errors.InputError("small_cnn has no classification top; the head is build_model's")
    if weights == "imagenet":
        raise WeightsError("weights='imagenet': the small backbone has none; use 'none' (random) or a weights file")
    inputs = keras.Input(input_shape) if input_tensor is None else input_tensor
    x = inputs
    for block, filters in enumerate(SMALL_FILTERS, start=1):
        for step in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{step}")(x)
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{step}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{step}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    (source,) = keras.utils.get_source_inputs(inputs)  # the caller's model input, when built on its tensor
    model = keras.Model(source, x, name="small_cnn")
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


def backbone_network(backbone: str, image_size: int, weights, input_tensor=None) -> keras.Model:
    """The 3-channel backbone network (include_top=False): random weights for "none", else the requested ones.
    Built on ``input_tensor`` when given (its layers then belong to the caller's graph): with "none", or
    "imagenet" for the backbones that load it into layers built there (``LOADS_IN_PLACE``)."""
    constructor, _, notop_file = BACKBONES[backbone]
    build = functools.partial(constructor, include_top=False, input_shape=(image_size, image_size, 3))
    if input_tensor is not None:
        build = functools.partial(build, input_tensor=input_tensor)
    if weights is None or weights == "none":
        return build(weights=None)
    if weights == "imagenet":
        try:
            return build(weights="imagenet")
        except WeightsError:  # a backbone that has no ImageNet weights says so itself
            raise
        except (FileNotFoundError, torch_file.TorchFileError) as error:  # EfficientNet-Lite0's package or its file
            raise WeightsError(str(error)) from error
        except Exception as error:  # Keras raises a bare Exception when the download fails
            raise WeightsError(
                f"could not get the ImageNet weights of {backbone} ({error}). Without internet, pass "
                f"weights=<path to {notop_file}> (for example from a Kaggle dataset of Keras "
                "pretrained models), or weights='none' for random initialisation."
            ) from error
    if not isinstance(weights, (str, Path)):
        raise WeightsError(f"weights={weights!r}: expected 'imagenet', 'none' or the path of a weights file")
    try:  # on Kaggle a file name is looked for in every attached dataset
        path = environment.resolve_input_file(str(weights), "weights")
    except FileNotFoundError as error:
        raise WeightsError(
            f"{error}\n(expected 'imagenet', 'none' or the path of a weights file such as {notop_file})"
        ) from error
    try:
        return build(weights=str(path))
    except Exception as error:
        raise WeightsError(
            f"{path}: could not load as {backbone} weights without the top ({error}); expected a file like {notop_file}"
        ) from error


LOADS_IN_PLACE = ("small", "efficientnet_lite0")  # their constructors set ImageNet weights on layers built anywhere


def backbone_features(backbone: str, x, weights):
    """The backbone (include_top=False, ``weights`` as ``backbone_network``) built on ``x``, the caller's
    (N, side, side, 3) tensor, so that each of its layers is a layer of the caller's model under its own name (a
    weights file by layer name then holds every layer's weights, whatever is frozen). Returns its feature map.

    A Keras application loads a weights file only as a model of its own: it is built so, and its weights copied.
    """
    image_size = int(x.shape[1])
    if weights in (None, "none") or (weights == "imagenet" and backbone in LOADS_IN_PLACE):
        return backbone_network(backbone, image_size, weights, input_tensor=x).output
    network = backbone_network(backbone, image_size, weights)
    built = backbone_network(backbone, image_size, "none", input_tensor=x)
    for layer in network.layers:
        if layer.weights:
            built.get_layer(layer.name).set_weights(layer.get_weights())
    return built.output


def freeze_batch_normalization(layers) -> None:
    """Make every BatchNormalization layer among ``layers`` non-trainable (inference mode).

    Why a pretrained backbone's statistics are kept is the lesson of notebooks/02_warmup_finetune.ipynb
    (section 3). In Keras 3 a non-trainable BatchNormalization layer always uses its moving statistics, whatever
    ``fit`` passes as ``training``. A backbone trained from scratch has none to keep (``quicken_batch_normalization``).
    """
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


TRAINING_BATCH_NORM_MOMENTUM = 0.9  # a backbone's BatchNormalization that trains (FREEZE_BATCH_NORM=no): Keras' 0.99


def quicken_batch_normalization(layers, momentum: float = TRAINING_BATCH_NORM_MOMENTUM) -> None:
    """Let the moving statistics of the BatchNormalization layers among ``layers`` follow their batches within tens
    of steps: every backbone whose BatchNormalization trains, pretrained or not (``classifier``).

    With Keras' default momentum (0.99) they need hundreds of steps to leave their initial values (a random
    backbone's 0 and 1, or ImageNet's statistics for a pretrained one), and until then the model in inference mode
    (validation, prediction) normalises by statistics its training batches no longer have; from scratch it gives the
    same output for every image.
    """
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


@functools.lru_cache(maxsize=None)
def feature_grid(backbone: str, image_size: int) -> int:
    """Side of the backbone's output feature map for square inputs of ``image_size`` pixels.

    Read from the shape of a real (randomly initialised) backbone, cached per (backbone, size).
    """
    check_backbone(backbone)
    check_image_size(backbone, image_size)
    model = BACKBONES[backbone][0](include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    return int(model.output.shape[1])

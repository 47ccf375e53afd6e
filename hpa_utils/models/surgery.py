"""Model surgery: the RGBY first convolution (yellow copies red) and the upscale adapter's shape."""

from __future__ import annotations

import keras
import numpy as np

from hpa_utils import errors
from hpa_utils.models.backbones import check_backbone, check_image_size, feature_grid

ADAPTER_NAME = "upscale_adapter"
HEAD_FILTERS = 32  # head_conv's filters, which the adapter keeps


def adapter_kernel_size_and_stride(source_grid: int, target_grid: int) -> tuple[int, int]:
    """(kernel_size, stride) of a 'valid' convolution that maps a source_grid side to exactly target_grid.

    stride = source_grid // target_grid and kernel_size = source_grid - stride * (target_grid - 1): the
    output side is then exactly target_grid and kernel_size >= stride, so every position of the large
    grid is seen (16 -> 7 gives kernel size 4, stride 2; 14 -> 7 gives kernel size 2, stride 2).
    Raises ValueError when target_grid is larger than source_grid (the adapter only shrinks).
    """
    if target_grid < 1 or source_grid < 1:
        raise errors.InputError(f"grid sides must be positive, got source {source_grid} and target {target_grid}")
    if target_grid > source_grid:
        raise errors.InputError(
            f"the upscale adapter shrinks a feature grid; cannot map {source_grid}x{source_grid} "
            f"to the larger {target_grid}x{target_grid}"
        )
    stride = max(1, source_grid // target_grid)
    kernel_size = source_grid - stride * (target_grid - 1)
    return kernel_size, stride


def upscale_adapter_shape(backbone: str, source_image_size: int, image_size: int) -> tuple[int, int]:
    """(kernel_size, stride) of the adapter that maps the grid at ``image_size`` to the grid at ``source_image_size``.

    ``source_image_size`` is the size the weights were trained at (224), ``image_size`` the new,
    larger size (512). Raises ValueError when the new grid is smaller than the source grid.
    """
    check_backbone(backbone)
    check_image_size(backbone, source_image_size, "source_image_size")
    check_image_size(backbone, image_size)
    large, small = feature_grid(backbone, image_size), feature_grid(backbone, source_image_size)
    if small > large:
        raise errors.InputError(
            f"{backbone}: image_size={image_size} gives a {large}x{large} feature grid, smaller than the "
            f"{small}x{small} grid of source_image_size={source_image_size}; the adapter only shrinks"
        )
    return adapter_kernel_size_and_stride(large, small)


def upscale_adapter(backbone: str, source_image_size: int, image_size: int) -> keras.layers.Conv2D:
    """The named Conv2D that brings the feature grid at ``image_size`` back to the grid at ``source_image_size``
    (notebook 03 builds it in its own lines; this rebuilds a finished 03 stage's model)."""
    kernel_size, stride = upscale_adapter_shape(backbone, source_image_size, image_size)
    return keras.layers.Conv2D(HEAD_FILTERS, kernel_size, strides=stride, activation="relu", name=ADAPTER_NAME)


def _add_yellow_input(value: np.ndarray, new_shape: tuple) -> np.ndarray | None:
    """``value`` with a yellow input channel, a copy of the red one's, where ``new_shape`` asks for it: the first
    convolution's (kh, kw, 3, filters) kernel, or ``input_bn``'s per-channel (3,) arrays. None for another change."""
    if value.ndim == 4 and value.shape[2] == 3 and new_shape[2] == 4:
        return np.concatenate([value, value[:, :, :1, :]], axis=2)
    if value.ndim == 1 and value.shape == (3,) and new_shape == (4,):
        return np.concatenate([value, value[:1]])
    return None


def rgby_from_rgb(model: keras.Model) -> keras.Model:
    """A 4-channel (RGBY) copy of a 3-channel model built by ``build_model``, with every weight copied.

    The rule for the new yellow (endoplasmic reticulum) input channel: the backbone's first convolution gets
    filter weights that copy the red (microtubules) channel's, and ``input_bn`` copies red's scale, offset and
    statistics. Both stains mark cytoplasmic structures with similar intensity statistics, so the pretrained
    first-layer filters respond to yellow as they do to red; and with an all-zero yellow channel and a fresh
    ``input_bn`` the new model predicts exactly what the old one does.
    """
    if model.input.shape[-1] != 3:
        raise errors.InputError(f"rgby_from_rgb expects a 3-channel model, got input shape {model.input.shape}")
    height, width = model.input.shape[1:3]
    inputs = keras.Input((height, width, 4), name=model.layers[0].name)
    expanded = keras.models.clone_model(model, input_tensors=inputs)
    widened = []
    for old, new in zip(model.layers[1:], expanded.layers[1:]):
        if old.name != new.name:
            raise errors.InputError(f"rgby_from_rgb: layer order differs after cloning ({old.name} vs {new.name})")
        values = []
        for old_value, new_variable in zip(old.get_weights(), new.weights):
            if old_value.shape != tuple(new_variable.shape):
                widened_value = _add_yellow_input(old_value, tuple(new_variable.shape))
                if widened_value is None:
                    raise errors.InputError(
                        f"rgby_from_rgb: unexpected shape change in layer {old.name}: "
                        f"{old_value.shape} -> {tuple(new_variable.shape)}"
                    )
                old_value = widened_value
                widened.append(old.name)
            values.append(old_value)
        new.set_weights(values)
        new.trainable = old.trainable
    convolutions = [name for name in dict.fromkeys(widened) if name != "input_bn"]
    if len(convolutions) != 1:
        raise errors.InputError(f"rgby_from_rgb: expected exactly one first convolution to widen, found {convolutions}")
    return keras.Model(inputs, expanded.output, name=model.name.replace("_rgb", "_rgby"))

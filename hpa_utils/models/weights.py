"""Weights files by layer name: Keras' legacy HDF5 layout, written and checked with h5py (public APIs only).

Each layer of a ``build_model`` model (the backbone's too: no nested model) owns its weights under its own name, in
the order Keras' legacy loader reads (trainable, then non-trainable: for every layer here the same whatever is
frozen), so ``model.load_weights(path, by_name=True, skip_mismatch=True)`` reads a file of another stage's model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import keras
import numpy as np

from hpa_utils.models.backbones import WeightsError
from hpa_utils.models.surgery import ADAPTER_NAME
from hpa_utils.system.atomic_files import atomic_write


def _check_legacy_path(path) -> Path:
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".weights.h5") or not name.endswith((".h5", ".hdf5")):
        raise WeightsError(
            f"{path}: legacy weights files must end in .h5 or .hdf5 but not .weights.h5 "
            "(Keras reads a .weights.h5 name as its own format, which cannot load by name)"
        )
    return path


def _layer_weights(layer) -> list:
    """A layer's variables in the order of Keras' legacy HDF5 files: trainable, then non-trainable."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def save_weights(model: keras.Model, path) -> Path:
    """Write the model's weights by layer name in Keras' legacy HDF5 layout (``layer_names``, a group per layer
    with its ``weight_names``), atomically. ``path`` must end in .h5 (not .weights.h5).

    The file loads by layer name with Keras' own ``model.load_weights(path, by_name=True, skip_mismatch=True)``
    (``loaded_by_name`` checks what matched) into a model whose layers carry the same names.
    """
    path = _check_legacy_path(path)
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise WeightsError(f"{model.name}: nested models {nested} have no weights of their own by name")
    with atomic_write(path) as temporary, h5py.File(temporary, "w") as file:
        file.attrs["layer_names"] = np.array([layer.name.encode("utf8") for layer in model.layers])
        file.attrs["backend"] = keras.backend.backend().encode("utf8")
        file.attrs["keras_version"] = keras.__version__.encode("utf8")
        for layer in sorted(model.layers, key=lambda layer: layer.name):  # as Keras: groups in name order
            group = file.create_group(layer.name)
            variables = _layer_weights(layer)
            group.attrs["weight_names"] = np.array([variable.path.encode("utf8") for variable in variables], "S")
            for variable in variables:
                group.create_dataset(variable.path, data=keras.ops.convert_to_numpy(variable))
    return path


def _names(group, name: str) -> list[str]:
    """A list attribute of a legacy file, stored whole or (Keras, when long) in numbered chunks."""
    chunks = [group.attrs[name]] if name in group.attrs else []
    while f"{name}{len(chunks)}" in group.attrs:
        chunks.append(group.attrs[f"{name}{len(chunks)}"])
    return [item.decode("utf8") if hasattr(item, "decode") else str(item) for chunk in chunks for item in chunk]


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
            return {
                name: [np.asarray(group[name][weight]) for weight in _names(group[name], "weight_names")]
                for name in _names(group, "layer_names")
            }
    except OSError as error:
        raise WeightsError(f"{path}: cannot read as HDF5 ({error})") from error


def _stored_names(stored: dict) -> list[str]:
    return sorted(name for name, arrays in stored.items() if arrays)


def _weighted_layer_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def loaded_by_name(model: keras.Model, path, allowed_new=(ADAPTER_NAME,)) -> tuple[list[str], list[str]]:
    """After a load by name from the legacy .h5 ``path``: (the layers whose weights now equal the file's, the layers
    with weights that did not get them). Keras loads nothing, silently, when names differ, so this is the check.

    Raises WeightsError naming the layers and the file's when a layer outside ``allowed_new`` got nothing.
    """
    return _compare_with_file(model, Path(path), _read_legacy_weights(Path(path)), allowed_new)


def _compare_with_file(model: keras.Model, path: Path, stored: dict, allowed_new) -> tuple[list[str], list[str]]:
    """``loaded_by_name`` on the file's arrays ``stored`` (read once)."""
    loaded, new = [], []
    for layer in model.layers:
        current = [keras.ops.convert_to_numpy(variable) for variable in _layer_weights(layer)]
        if not current:
            continue
        arrays = stored.get(layer.name)
        same = arrays is not None and len(arrays) == len(current)
        same = same and all(a.shape == c.shape and np.array_equal(a, c) for a, c in zip(arrays, current))
        (loaded if same else new).append(layer.name)
    unexpected = [name for name in new if name not in allowed_new]
    if unexpected:
        raise WeightsError(
            f"{path}: layers {unexpected} of {model.name} got no weights from the file (names or shapes differ); "
            f"the file has weights for {_stored_names(stored)}, loaded {loaded}"
        )
    return loaded, new


def transfer_weights(model: keras.Model, path, allowed_new=(ADAPTER_NAME,)) -> list[str]:
    """Load a legacy .h5 file by layer name (Keras' ``load_weights(..., by_name=True, skip_mismatch=True)``) and
    return the names of the layers that got its values. A layer whose shape changed keeps
    its own weights. Raises WeightsError when the file is missing or unusable, or a layer outside ``allowed_new``
    got nothing (``loaded_by_name``).
    """
    path = Path(path)
    stored = _read_legacy_weights(path)  # a clear error for a missing or foreign file, before Keras reads it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping loading")
        model.load_weights(str(path), by_name=True, skip_mismatch=True)
    return _compare_with_file(model, path, stored, allowed_new)[0]


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
            raise WeightsError(f"{path}: does not fit {model.name} ({error})") from error
        return _weighted_layer_names(model)
    return transfer_weights(model, path, allowed_new=())

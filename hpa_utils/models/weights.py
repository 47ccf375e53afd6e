"""Weights files: legacy .h5 save and load by layer name, checked (the only file on Keras' private API)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np
from keras.src.legacy.saving import legacy_h5_format

from hpa_utils.atomic_files import atomic_write
from hpa_utils.models.backbones import WeightsError, freeze_batch_normalization, walk_layers
from hpa_utils.models.surgery import ADAPTER_NAME


@contextlib.contextmanager
def canonical_weight_order(model: keras.Model):
    """Temporarily put the model in the one trainable state its weights files are written in (and read in).

    The legacy .h5 format stores each layer's weights as trainable + non-trainable, so the order within the nested
    backbone depends on what is frozen, and a by-name load into a model frozen differently assigns arrays to the
    wrong variables (silently where shapes agree). So ``save_weights`` writes, and a load by name reads, in one
    state: everything trainable except the backbone's BatchNormalization layers.
    """
    states = [(layer, layer.trainable) for layer in walk_layers(model)]
    for layer, _ in states:  # one by one: a Keras 3 Functional does not pass the flag to its layers
        layer.trainable = True
    for layer in model.layers:
        if layer.name == "backbone":
            freeze_batch_normalization(layer)
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
    with atomic_write(path) as temporary, canonical_weight_order(model):
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
            return {str(name): legacy_h5_format.load_subset_weights_from_hdf5_group(group[name]) for name in names}
    except OSError as error:
        raise WeightsError(f"{path}: cannot read as HDF5 ({error})") from None


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
    with canonical_weight_order(model):
        for layer in model.layers:
            current = [np.asarray(variable) for variable in legacy_h5_format._legacy_weights(layer)]
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
    """Load a legacy .h5 file by layer name (Keras' ``load_weights(..., by_name=True, skip_mismatch=True)``, in the
    weights' one order) and return the names of the layers that got its values. A layer whose shape changed keeps
    its own weights. Raises WeightsError when the file is missing or unusable, or a layer outside ``allowed_new``
    got nothing (``loaded_by_name``).
    """
    path = Path(path)
    stored = _read_legacy_weights(path)  # a clear error for a missing or foreign file, before Keras reads it
    with canonical_weight_order(model), warnings.catch_warnings():
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
            raise WeightsError(f"{path}: does not fit {model.name} ({error})") from None
        return _weighted_layer_names(model)
    return transfer_weights(model, path, allowed_new=())

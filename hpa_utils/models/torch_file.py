"""PyTorch's legacy ``torch.save`` files of tensors, read without torch and without running the file's code.

A ``torch.save`` file is a pickle, and unpickling can call any function a file names (``os.system`` too), so
``torch.load`` on a stranger's file runs the stranger's code. The legacy (pre-zip, torch < 1.6) layout is five parts
one after the other: a magic number, a protocol version, a small dict of system facts, the pickled object (tensors
refer to their storages by persistent ids) and a list of storage keys, then each storage's raw bytes (an 8-byte
element count, then the elements, little-endian). This reader allows exactly the globals a state dict of tensors
needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the typed storage names) and refuses
anything else with ``TorchFileError`` naming the file, before it is called.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np

from hpa_utils import errors

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
STORAGE_TYPES = {  # torch.<name> -> the element type of its bytes (little-endian)
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchFileError(errors.InputError):
    """A file that is not a legacy torch.save file of tensors, is cut short, or names code it is not allowed to run."""


class _Storage:
    """A storage named by the pickle; its bytes come after it."""

    def __init__(self, key: str, dtype: np.dtype, count: int):
        self.key, self.dtype, self.count = key, dtype, count
        self.array: np.ndarray | None = None


class _TensorView:
    """``_rebuild_tensor_v2``'s arguments, turned into an array once the storages are read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self, path) -> np.ndarray:
        data, itemsize = self.storage.array, self.storage.dtype.itemsize
        last = self.offset + sum((side - 1) * step for side, step in zip(self.size, self.stride) if side > 0)
        if self.offset < 0 or any(step < 0 for step in self.stride) or (all(self.size) and last >= len(data)):
            raise TorchFileError(f"{path}: a tensor of shape {self.size} reaches outside storage {self.storage.key}")
        strides = tuple(step * itemsize for step in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], shape=self.size, strides=strides, writeable=False)
        return np.array(view)


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("_rebuild_tensor_v2 was given something other than a storage")
    return _TensorView(storage, int(offset), size, stride)


class _Unpickler(pickle.Unpickler):
    """An unpickler that resolves only the allowed names; ``storages`` collects the persistent ids it meets."""

    def __init__(self, file, path, allow_tensors: bool):
        super().__init__(file)
        self.path, self.allow_tensors, self.storages = path, allow_tensors, {}

    def find_class(self, module, name):
        if self.allow_tensors:
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor
            if module == "torch" and name in STORAGE_TYPES:
                return STORAGE_TYPES[name]
        raise TorchFileError(
            f"{self.path}: the file asks to run {module}.{name}, which a file of tensors never needs; refused "
            "(a pickle can run any code it names: read only files you trust, and this one not at all)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], np.dtype)):
            raise TorchFileError(f"{self.path}: an unknown persistent id {pid!r:.80}")
        _, dtype, key, _location, count, view = pid
        if view is not None:
            raise TorchFileError(f"{self.path}: storage {key} is a view of another storage (not read here)")
        if str(key) not in self.storages:
            self.storages[str(key)] = _Storage(str(key), dtype, int(count))
        return self.storages[str(key)]


def _load(file, path, allow_tensors: bool = False):
    unpickler = _Unpickler(file, path, allow_tensors)
    try:
        return unpickler.load(), unpickler.storages
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
        raise TorchFileError(f"{path}: not a legacy torch.save file of tensors, or cut short ({error})") from error


def _read_exactly(file, size: int, path, what: str) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise TorchFileError(f"{path}: cut short while reading {what} ({len(data)} of {size} bytes)")
    return data


def read_state_dict(source) -> dict[str, np.ndarray]:
    """The tensors of a legacy ``torch.save`` file of a state dict, by name, as NumPy arrays.

    source: a path, or a seekable binary file object (a member of a wheel's zip). Raises TorchFileError naming the
    file when it is a zip-format file (torch >= 1.6; not read here), not a torch file, cut short, or names any global
    beyond the tensor rebuild, OrderedDict and the storage types.
    """
    if isinstance(source, (str, Path)):
        with open(source, "rb") as file:
            return read_state_dict_from(file, Path(source))
    return read_state_dict_from(source, getattr(source, "name", "<file>"))


def read_state_dict_from(file, path) -> dict[str, np.ndarray]:
    """``read_state_dict`` on an open binary file; ``path`` names it in errors."""
    head = file.read(4)
    if head.startswith(b"PK"):
        raise TorchFileError(f"{path}: a zip-format torch.save file (torch >= 1.6); only the legacy format is read")
    file.seek(-len(head), io.SEEK_CUR)
    magic, _ = _load(file, path)
    protocol, _ = _load(file, path)
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise TorchFileError(f"{path}: not a legacy torch.save file (magic {magic!r:.40}, protocol {protocol!r:.20})")
    system, _ = _load(file, path)
    if not isinstance(system, dict) or not system.get("little_endian", False):
        raise TorchFileError(f"{path}: written on a big-endian machine or without system facts; not read")
    state, storages = _load(file, path, allow_tensors=True)
    keys, _ = _load(file, path)
    if not isinstance(state, dict) or not all(isinstance(v, _TensorView) for v in state.values()):
        raise TorchFileError(f"{path}: holds {type(state).__name__}, not a state dict of tensors")
    if sorted(map(str, keys)) != sorted(storages):
        raise TorchFileError(f"{path}: its storage list does not match the storages its tensors use")
    for key in keys:
        storage = storages[str(key)]
        count = int.from_bytes(_read_exactly(file, 8, path, f"storage {key}'s size"), "little", signed=True)
        if count != storage.count:
            raise TorchFileError(f"{path}: storage {key} holds {count} elements where the pickle says {storage.count}")
        data = _read_exactly(file, count * storage.dtype.itemsize, path, f"storage {key}")
        storage.array = np.frombuffer(data, dtype=storage.dtype)
    return {str(name): view.to_numpy(path) for name, view in state.items()}

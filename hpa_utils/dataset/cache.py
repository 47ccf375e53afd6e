"""The pre-resized uint8 image cache: PNGs decoded once, in parallel, into a memory-mapped array; or, where the
disk has no room for it, the same pixels decoded on the fly whenever they are read."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hpa_utils import dataset, errors
from hpa_utils.system import atomic_files, disk, environment

CACHE_VERSION = 2  # bump when the cached pixels would change for the same key (e.g. another resize)
CACHE_MODES = ("auto", "memmap", "stream")  # the CACHE parameter
FREE_SPACE_KEPT = 2**30  # auto: the cache is built only where it leaves this much of the disk free


def default_cache_dir() -> Path:
    """``<repo>/data/cache`` locally; on Kaggle ``<temporary folder>/hpa_cache``: /kaggle/working is the output."""
    if environment.is_kaggle():
        return Path(tempfile.gettempdir()) / "hpa_cache"
    return environment.REPO_ROOT / "data" / "cache"


def _dataset_fingerprint(data_dir: Path) -> list:
    """Name, size and modification time of the label files: changes when the dataset is replaced."""
    return sorted(
        [path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in data_dir.glob("*.csv") if path.is_file()
    )


def cache_key(data_dir, split: str, ids, image_size: int, channels: str) -> str:
    """16 hex digits identifying the cached array of these samples, at this size, in this channel mode."""
    data_dir = Path(data_dir).resolve()
    description = {
        "version": CACHE_VERSION,
        "data_dir": str(data_dir),
        "fingerprint": _dataset_fingerprint(data_dir),
        "split": split,
        "ids": list(ids),
        "image_size": image_size,
        "channels": channels,
    }
    return hashlib.sha256(json.dumps(description).encode()).hexdigest()[:16]


def cache_path(data_dir, split: str, ids, image_size: int, channels: str = "rgby", cache_dir=None) -> Path:
    """Where ``build_cache`` keeps these samples: ``<cache_dir>/<split>-<size>px-<channels>-<key>.u8``."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(data_dir, split, ids, image_size, channels)
    return cache_dir / cache_name(split, image_size, channels, key)


def cache_name(split: str, image_size: int, channels: str, key: str = "*") -> str:
    """A cache file's name: ``<split>-<size>px-<channels>-<key>.u8`` (``key`` "*": a glob of every such file)."""
    return f"{split}-{image_size}px-{channels}-{key}.u8"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _open_if_complete(path: Path, shape: tuple[int, ...]):
    """The cached array at ``path`` if it and its sidecar are complete and match ``shape``, else None."""
    sidecar = _sidecar(path)
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        description = atomic_files.read_json(sidecar)
    except ValueError:
        return None
    if tuple(description.get("shape", ())) != shape or description.get("dtype") != "uint8":
        return None
    if path.stat().st_size != int(np.prod(shape)):
        return None
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


def _check_free_space(directory: Path, needed_bytes: int) -> None:
    free_bytes = shutil.disk_usage(directory).free
    if free_bytes < needed_bytes:
        raise errors.NoSpaceError(
            f"{directory}: the image cache needs {needed_bytes / 2**30:.1f} GiB but only "
            f"{free_bytes / 2**30:.1f} GiB is free (use a smaller image_size, 'rgb', or another cache_dir)"
        )


def build_cache(
    data_dir,
    split: str,
    ids,
    image_size: int,
    channels: str = "rgby",
    cache_dir=None,
    workers: int | None = None,
    mode: str = "memmap",
):
    """The samples ``ids`` of ``split`` as a read-only (N, image_size, image_size, C) uint8 memmap, in ids order.

    Decoded once with ``dataset.load_sample`` on ``workers`` threads (default: all CPUs) into a file
    under ``cache_dir`` (default ``default_cache_dir()``), keyed by the dataset, split, ids, size and
    channel mode; later calls with the same arguments only map that file. The file is written under a
    temporary name and renamed when complete, so an interrupted build is never reused. A sample that
    fails to load raises the dataset's error with a note naming the Id; ValueError for bad arguments.
    ``mode`` (the CACHE parameter): "memmap" as described; "stream": a ``StreamedImages`` that decodes the
    rows it is asked for, each time (the same pixels, nothing on disk); "auto": the memmap where its file
    exists or fits on the disk leaving ``FREE_SPACE_KEPT`` free, else streamed, saying so.
    """
    if mode not in CACHE_MODES:
        raise errors.InputError(f"CACHE={mode!r} is not supported; choose one of {', '.join(CACHE_MODES)}")
    ids = [str(image_id) for image_id in ids]
    if not ids:
        raise errors.InputError(f"build_cache: no ids given for split {split!r}")
    if not errors.is_integer(image_size) or image_size <= 0:
        raise errors.InputError(f"build_cache: image_size must be a positive int, got {image_size!r}")
    image_size = int(image_size)
    if channels not in dataset.CHANNEL_MODES:
        raise errors.InputError(
            f"build_cache: unknown channels {channels!r}; expected one of {', '.join(dataset.CHANNEL_MODES)}"
        )
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise errors.MissingError(f"{data_dir}: data folder not found")

    path = cache_path(data_dir, split, ids, image_size, channels, cache_dir)
    shape = (len(ids), image_size, image_size, len(dataset.CHANNEL_MODES[channels]))
    if mode == "auto" and _open_if_complete(path, shape) is None:
        needed, free = int(np.prod(shape)), disk.free_bytes(path.parent)
        if needed + FREE_SPACE_KEPT > free:
            mode = "stream"
            print(
                f"{split} images: the cache would need {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB is free in "
                f"{path.parent}; decoding them on the fly instead (the same pixels, each time they are read)"
            )
    if mode == "stream":
        return StreamedImages(data_dir, split, ids, image_size, channels, workers)
    description = {"count": len(ids), "split": split, "image_size": image_size, "channels": channels}
    description |= {"data_dir": str(data_dir), "first_id": ids[0], "last_id": ids[-1]}
    return _array_once(
        path,
        shape,
        lambda array: _decode_into(array, data_dir, split, ids, image_size, channels, workers),
        description,
    )


def _array_once(path: Path, shape: tuple, fill, description: dict) -> np.ndarray:
    """The read-only uint8 memmap at ``path`` when it is complete; else ``fill(array)`` writes it under a temporary
    name (renamed when done, so an interrupted build is never reused), with its sidecar (shape, ``description``)."""
    cached = _open_if_complete(path, shape)
    if cached is not None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_free_space(path.parent, int(np.prod(shape)))
    with atomic_files.atomic_write(path) as temporary:
        array = np.memmap(temporary, dtype=np.uint8, mode="w+", shape=shape)
        fill(array)
        array.flush()
        del array
    atomic_files.write_json(_sidecar(path), {"shape": list(shape), "dtype": "uint8", **description})
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


def _load(data_dir, split: str, ids: list, index: int, image_size: int, channels: str, doing: str) -> np.ndarray:
    """Sample ``ids[index]`` as ``dataset.load_sample`` gives it; its errors get a note naming the Id and the row."""
    image_id = ids[index]
    try:
        return dataset.load_sample(data_dir, split, image_id, channels=channels, image_size=image_size)
    except Exception as error:
        error.add_note(f"while {doing} {split} sample {image_id} ({index + 1} of {len(ids)}) from {data_dir}")
        raise


def _decode_into(array, data_dir, split, ids, image_size, channels, workers) -> None:
    """Fill ``array[i]`` with sample ``ids[i]`` on a thread pool (cv2 decodes without the GIL)."""

    def load(index: int) -> None:
        sample = _load(data_dir, split, ids, index, image_size, channels, "caching")
        if sample.shape != array.shape[1:] or sample.dtype != np.uint8:
            raise errors.InputError(
                f"{split} sample {ids[index]}: loaded as {sample.shape} {sample.dtype}, "
                f"expected {array.shape[1:]} uint8"
            )
        array[index] = sample

    workers = workers or os.cpu_count() or 1
    description = f"caching {split} {image_size}px {channels}"
    with tqdm(total=len(ids), desc=description, unit="img", leave=False) as bar:  # gone when done, as predict's
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hpa-cache")
        try:
            futures = [executor.submit(load, index) for index in range(len(ids))]
            for future in as_completed(futures):
                future.result()
                bar.update()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


class StreamedImages:
    """The samples ``ids`` of ``split`` decoded whenever rows are read: the cache's array interface (``shape``,
    ``dtype``, ``len``, rows by index, slice or mask) with nothing on disk, for where the cache does not fit.

    Each read decodes its rows with ``dataset.load_sample`` on a pool of ``workers`` threads (default: all CPUs),
    as ``build_cache`` would, so a tf.data pipeline gathering batches from it decodes in parallel, in order.
    """

    def __init__(self, data_dir, split: str, ids, image_size: int, channels: str, workers: int | None = None):
        self.data_dir, self.split, self.ids = Path(data_dir), split, [str(image_id) for image_id in ids]
        self.image_size, self.channels = int(image_size), channels
        self.shape = (len(self.ids), self.image_size, self.image_size, len(dataset.CHANNEL_MODES[channels]))
        self.dtype, self.ndim = np.dtype(np.uint8), 4
        self.key = f"stream-{cache_key(self.data_dir, split, self.ids, self.image_size, channels)}"  # see _identity
        self._executor = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="hpa-stream")

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StreamedImages({self.split}, {self.shape}, decoded from {self.data_dir})"

    def _load(self, row: int) -> np.ndarray:
        return _load(self.data_dir, self.split, self.ids, row, self.image_size, self.channels, "decoding")

    def __getitem__(self, index) -> np.ndarray:
        rows = np.arange(len(self))[index]
        if np.ndim(rows) == 0:
            return self._load(int(rows))
        result = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        for position, sample in enumerate(self._executor.map(self._load, rows.tolist())):
            result[position] = sample
        return result

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype)


def _identity(array: np.ndarray) -> str:
    """What an array's rows are, for a cache key: its cache file, or (in memory) a hash of its bytes."""
    filename = getattr(array, "filename", None) or getattr(array, "key", None)
    return str(filename) if filename else hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def stacked(parts: list, cache_dir=None) -> np.ndarray:
    """The chosen rows of several image arrays one after another, as one read-only memmap on disk (not in memory).

    ``parts``: (array, rows) pairs, rows an index array or None for all. The file
    (``<cache_dir>/stacked-<key>.u8``) is keyed by the arrays' cache files and the rows, so the same rows are
    stacked once and then only mapped.
    """
    parts = [
        (array, np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)) for array, rows in parts
    ]
    sample_shapes = {array.shape[1:] for array, _ in parts}
    if not parts or len(sample_shapes) != 1:
        raise errors.InputError(f"stacked: needs arrays of one sample shape, got {[array.shape for array, _ in parts]}")
    shape = (sum(len(rows) for _, rows in parts), *parts[0][0].shape[1:])
    description = [[_identity(array), hashlib.sha256(rows.tobytes()).hexdigest()[:16]] for array, rows in parts]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(json.dumps([CACHE_VERSION, description]).encode()).hexdigest()[:16]
    path = cache_dir / f"stacked-{shape[1]}px-{key}.u8"

    def fill(target) -> None:
        row = 0
        for array, rows in parts:
            for start in range(0, len(rows), 1024):
                chunk = np.asarray(array[rows[start : start + 1024]], dtype=np.uint8)
                target[row : row + len(chunk)] = chunk
                row += len(chunk)

    return _array_once(path, shape, fill, {"parts": description})

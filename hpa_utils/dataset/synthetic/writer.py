"""The embedded dataset on disk: Ids, label files and channel PNGs in the Kaggle layout, written in parallel."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import secrets
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hpa_utils import errors
from hpa_utils.dataset import labels as labels_module
from hpa_utils.dataset.label_files import SAMPLE_SUBMISSION_CSV, TEST_LABELS_CSV, TRAIN_CSV
from hpa_utils.dataset.synthetic.label_sets import sample_label_sets
from hpa_utils.dataset.synthetic.sample import MIN_IMAGE_SIZE, render_sample

SPLITS: tuple[str, ...] = ("train", "test")

GENERATOR_VERSION = 3  # part of ensure_dataset's folder name: bump it when the pictures change

# On noisy microscopy-like images Huffman-only coding is both faster and smaller than zlib's matching,
# and the single "sub" row filter halves the encoding time for 7 % more bytes (OpenCV >= 4.11 knows it).
PNG_OPTIONS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY) + (
    (cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB) if hasattr(cv2, "IMWRITE_PNG_FILTER") else ()
)

# Purposes of the per-sample random streams: np.random.default_rng([seed, purpose, index]).
_TRAIN_SAMPLES, _TEST_SAMPLES, _LABEL_DRAWS, _ID_DRAWS = 0, 1, 2, 3


def dataset_name(n_train: int, n_test: int, image_size: int, seed: int, min_per_class: int = 2) -> str:
    """The folder name ensure_dataset uses for these arguments (and this generator version)."""
    return f"synthetic-train{n_train}-test{n_test}-{image_size}px-seed{seed}-min{min_per_class}-v{GENERATOR_VERSION}"


def make_ids(count: int, seed: int) -> list[str]:
    """``count`` unique UUID-shaped Ids like the real ones (xxxxxxxx-xxxx-11e8-b2xx-xxxxxxxxxxxx)."""
    rng = np.random.default_rng([seed, _ID_DRAWS, 0])
    ids, seen = [], set()
    while len(ids) < count:
        words = rng.integers(0, 2**32, size=(count - len(ids), 4), dtype=np.uint64)
        for first, second, third, fourth in words.tolist():
            image_id = f"{first:08x}-{second >> 16:04x}-11e8-b2{second & 0xFF:02x}-{third & 0xFFFF:04x}{fourth:08x}"
            if image_id not in seen:
                seen.add(image_id)
                ids.append(image_id)
    return ids


def _labelled_splits(n_train: int, n_test: int, seed: int, min_per_class: int) -> dict:
    """{"train": [(Id, label set), ...], "test": [...]}: Ids sorted, label sets drawn per split."""
    ids = make_ids(n_train + n_test, seed)
    splits = {}
    for split_index, (split, split_ids, count) in enumerate(
        (("train", ids[:n_train], n_train), ("test", ids[n_train:], n_test))
    ):
        label_sets = sample_label_sets(count, np.random.default_rng([seed, _LABEL_DRAWS, split_index]), min_per_class)
        splits[split] = list(zip(sorted(split_ids), label_sets))
    return splits


def _write_label_files(folder: Path, splits: dict) -> None:
    """train.csv, test_labels.csv (for evaluation only) and sample_submission.csv."""
    for name, split in ((TRAIN_CSV, "train"), (TEST_LABELS_CSV, "test")):
        rows = [(image_id, labels_module.format_target(label_set)) for image_id, label_set in splits[split]]
        _write_csv(folder / name, ("Id", "Target"), rows)
    _write_csv(folder / SAMPLE_SUBMISSION_CSV, ("Id", "Predicted"), [(image_id, "0") for image_id, _ in splits["test"]])


def generate(
    out_dir,
    n_train: int,
    n_test: int,
    image_size: int = 512,
    seed: int = 0,
    min_per_class: int = 2,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the synthetic dataset in the Kaggle layout into ``out_dir``; returns its Path.

    Files: train.csv (Id,Target), sample_submission.csv (Id,Predicted), test_labels.csv (Id,Target;
    for evaluation only), train/<Id>_<color>.png and test/<Id>_<color>.png (8-bit grayscale). The
    same arguments give byte-identical files whatever ``workers`` (processes; default os.cpu_count()).
    Train and test label sets are drawn alike (real statistics, each split with the
    ``min_per_class`` floor). Everything is written into a hidden sibling folder that is renamed to
    ``out_dir`` at the end, so a killed run never leaves a half dataset there. Raises ValueError for bad
    arguments or an ``out_dir`` that exists and is not empty.
    """
    n_train = errors.integer("n_train", n_train, minimum=1)
    n_test = errors.integer("n_test", n_test, minimum=1)
    image_size = errors.integer("image_size", image_size, minimum=MIN_IMAGE_SIZE)
    seed = errors.integer("seed", seed, minimum=0)
    min_per_class = errors.integer("min_per_class", min_per_class, minimum=0)
    workers = (os.cpu_count() or 1) if workers is None else errors.integer("workers", workers, minimum=1)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise errors.InputError(f"{out_dir}: already exists and is not an empty folder; choose a new out_dir")

    splits = _labelled_splits(n_train, n_test, seed, min_per_class)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    temporary.mkdir()  # (not tempfile.mkdtemp: its 0700 mode would stay on the dataset)
    try:
        _write_label_files(temporary, splits)
        tasks = []
        for split_index, split in enumerate(SPLITS):
            (temporary / split).mkdir()
            rows = [(position, image_id, label_set) for position, (image_id, label_set) in enumerate(splits[split])]
            chunk = max(1, min(16, len(rows) // (4 * workers) or 1))
            for start in range(0, len(rows), chunk):
                tasks.append((str(temporary / split), split_index, seed, image_size, rows[start : start + chunk]))
        _run_tasks(tasks, workers, progress, total=n_train + n_test)
        try:
            os.rename(temporary, out_dir)  # replaces an empty folder; fails on a non-empty one
        except OSError as error:
            if out_dir.is_dir() and any(out_dir.iterdir()):
                raise errors.InputError(
                    f"{out_dir}: another process wrote this folder meanwhile; not overwriting it"
                ) from error
            raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out_dir


def ensure_dataset(root, n_train: int, n_test: int, image_size: int, seed: int, min_per_class: int = 2) -> Path:
    """root/<dataset_name(...)>: generated on first use (it says so), reused afterwards."""
    path = Path(root) / dataset_name(n_train, n_test, image_size, seed, min_per_class)
    if (path / TRAIN_CSV).is_file():
        return path
    print(f"synthetic dataset: generating {path} ({n_train} train + {n_test} test images, {image_size} px)")
    try:
        return generate(path, n_train, n_test, image_size=image_size, seed=seed, min_per_class=min_per_class)
    except ValueError:
        if (path / TRAIN_CSV).is_file():  # another process finished it first
            return path
        raise


def _write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _render_chunk(task) -> int:
    folder, split_index, seed, image_size, rows = task
    folder = Path(folder)
    parameters = list(PNG_OPTIONS)
    for position, image_id, label_set in rows:
        rng = np.random.default_rng([seed, _TRAIN_SAMPLES if split_index == 0 else _TEST_SAMPLES, position])
        for color, image in render_sample(label_set, image_size, rng).items():
            ok, encoded = cv2.imencode(".png", image, parameters)
            if not ok:
                raise OSError(f"{folder / image_id}_{color}.png: PNG encoding failed")
            (folder / f"{image_id}_{color}.png").write_bytes(encoded.tobytes())
    return len(rows)


def _worker_start():
    cv2.setNumThreads(1)


def _run_tasks(tasks, workers, progress, total):
    with tqdm(total=total, desc="synthetic images", unit="image", disable=not progress) as bar:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                bar.update(_render_chunk(task))
            return
        # not "fork": the caller (a notebook) may already run TensorFlow's threads, which fork copies badly
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with concurrent.futures.ProcessPoolExecutor(
            min(workers, len(tasks)), mp_context=context, initializer=_worker_start
        ) as pool:
            futures = [pool.submit(_render_chunk, task) for task in tasks]
            try:
                for future in concurrent.futures.as_completed(futures):
                    bar.update(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

"""The validator: every problem of a Kaggle-layout folder at once (label files, missing and broken images)."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

from tqdm import tqdm

from hpa_utils.dataset.images import COLORS, ImageError, channel_file_names, load_channel
from hpa_utils.dataset.label_files import (
    SAMPLE_SUBMISSION_CSV,
    TEST_LABELS_CSV,
    TRAIN_CSV,
    read_label_file,
    read_submission_file,
)


def _check_image(path: Path) -> str | None:
    try:
        load_channel(path)
    except (ImageError, FileNotFoundError) as error:
        return str(error)
    except Exception as error:  # any decoder failure is a problem of this file, not a crash of validate
        return f"{path}: cannot decode ({type(error).__name__}: {error})"
    return None


def _find_channel_files(folder: Path, image_ids, source_name: str):
    """Channel files of each Id in ``folder`` (from one directory listing) and a problem per Id with missing colours."""
    present = set(os.listdir(folder))
    files, problems = [], []
    for image_id in image_ids:
        missing = []
        for color in COLORS:
            found = next((name for name in channel_file_names(image_id, color) if name in present), None)
            if found is None:
                missing.append(color)
            else:
                files.append(folder / found)
        if len(missing) == len(COLORS):
            problems.append(f"{folder}: Id {image_id} (from {source_name}) has no images at all")
        elif missing:
            problems.append(
                f"{folder}: Id {image_id} (from {source_name}) has no {', '.join(missing)} image "
                f"(looked for {image_id}_<colour>.png/.jpg/.jpeg/.tif/.tiff)"
            )
    return files, problems


def _validate(
    data_dir, check_images: bool = True, workers: int | None = None, progress: bool = True, training_only=False
):
    """validate() plus how many train and test samples and image files were checked."""
    data_dir = Path(data_dir)
    counts = {"train": 0, "test": 0, "files": 0}
    if not data_dir.is_dir():
        return [f"{data_dir}: data folder not found"], counts
    _, problems, train_ids = read_label_file(data_dir / TRAIN_CSV)
    splits = [("train", train_ids, TRAIN_CSV)]
    if not training_only:
        submission, submission_problems = read_submission_file(data_dir / SAMPLE_SUBMISSION_CSV)
        problems += submission_problems
        splits.append(("test", submission["Id"].tolist(), SAMPLE_SUBMISSION_CSV))
        if (data_dir / TEST_LABELS_CSV).exists():
            problems += read_label_file(data_dir / TEST_LABELS_CSV)[1]

    files = []
    for split, ids, source_name in splits:
        folder = data_dir / split
        if not folder.is_dir():
            problems.append(f"{folder}: image folder not found")
            continue
        split_files, split_problems = _find_channel_files(folder, ids, source_name)
        files += split_files
        problems += split_problems
        counts[split] = len(ids)

    if check_images and files:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
            checks = executor.map(_check_image, files)
            bar = tqdm(checks, total=len(files), desc="checking images", unit="file", disable=not progress)
            results = list(bar)
        problems += [result for result in results if result]
        counts["files"] = len(files)
    return problems, counts


def validate(
    data_dir, check_images: bool = True, *, workers: int | None = None, progress: bool = True, training_only=False
) -> list[str]:
    """Every problem of a Kaggle-layout data folder, one message each; an empty list means OK.

    Checks train.csv, sample_submission.csv (and test_labels.csv when present) as the readers do,
    that train/ and test/ exist, that every Id of train.csv and sample_submission.csv has its four
    channel files, and (``check_images``) that each file decodes: empty, unreadable and truncated
    files are reported. Images are decoded on ``workers`` threads (None: Python's default) with a
    tqdm progress bar (``progress``). Image files whose Id is in no csv file are not a problem. With
    ``training_only`` (a folder of extra training images, as `external download` writes) only train.csv and
    train/ are checked.
    """
    return _validate(data_dir, check_images, workers=workers, progress=progress, training_only=training_only)[0]


def main_validate(data_dir, check_images: bool = True, training_only: bool = False) -> int:
    """Print every problem of ``data_dir`` (or one OK line) and return the exit code: 0 when OK, 1 otherwise."""
    problems, counts = _validate(data_dir, check_images, training_only=training_only)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in {data_dir}")
        return 1
    checked = f" ({counts['files']} channel files decoded)" if check_images else " (images not decoded)"
    print(f"OK: {counts['train']} train, {counts['test']} test images checked{checked} in {data_dir}")
    return 0


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils validate DATA_DIR`."""
    check_images, training_only = not arguments.no_images, arguments.training_only
    return main_validate(arguments.data_dir, check_images=check_images, training_only=training_only)

"""The Kaggle-layout data folder: train.csv, sample_submission.csv, channel images, and a validator for all of it."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
from pathlib import Path, PureWindowsPath

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from hpa_utils import labels as labels_module

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow")
CHANNEL_MODES: dict[str, tuple[str, ...]] = {
    "rgby": COLORS,  # all four stains: microtubules, protein, nucleus, endoplasmic reticulum
    "rgb": COLORS[:3],  # what the public kernels fed ImageNet backbones
}
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TRAIN_CSV = "train.csv"
SAMPLE_SUBMISSION_CSV = "sample_submission.csv"
TEST_LABELS_CSV = "test_labels.csv"
MAX_PROBLEMS_SHOWN = 50

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_TRAILER_SEARCH_BYTES = 1024  # a complete file has its end marker within this many bytes of the end


class DatasetError(ValueError):
    """A data folder or label file with problems; ``.problems`` lists every one of them.

    ``str()`` shows one problem per line (the first 50, then "... and N more").
    """

    def __init__(self, problems):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        lines = list(shown)
        if len(self.problems) > len(shown):
            lines.append(f"... and {len(self.problems) - len(shown)} more")
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (type(self), (self.problems,))


class ImageError(ValueError):
    """A channel image that cannot be used: empty, not an image, truncated or corrupt. The message names the file."""


# --- label files -------------------------------------------------------------------------------


def _id_problem(image_id: str) -> str | None:
    """Why ``image_id`` cannot be used as a file name prefix inside the image folder, or None."""
    if not image_id:
        return "empty Id"
    if "/" in image_id or "\\" in image_id:
        return f"Id {image_id!r} contains a path separator (an Id must be a plain file name)"
    if ".." in image_id:
        return f"Id {image_id!r} contains '..' (an Id must be a plain file name)"
    if "\x00" in image_id:
        return f"Id {image_id!r} contains a NUL character"
    if os.path.isabs(image_id) or PureWindowsPath(image_id).drive:
        return f"Id {image_id!r} is an absolute path (an Id must be a plain file name)"
    return None


def _check_image_id(image_id: str) -> None:
    problem = _id_problem(image_id)
    if problem:
        raise ValueError(problem)


def _read_csv_rows(path: Path, required_columns: tuple[str, ...], optional_columns: tuple[str, ...] = ()):
    """Rows of a CSV file as ``(row_number, {column: stripped value})`` plus the problems found.

    An optional column that the file lacks reads as "".
    Row numbers count the header as row 1, so they equal the line numbers an editor shows.
    Tolerates a UTF-8 byte-order mark, CRLF line ends, blank lines and extra columns.
    """
    name = path.name
    if not path.is_file():
        return [], [f"{path}: file not found"]
    if path.stat().st_size == 0:
        return [], [f"{path}: empty file (expected a header line {','.join(required_columns)})"]
    rows, problems = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None or not any(field.strip() for field in header):
                return [], [f"{path}: empty file (expected a header line {','.join(required_columns)})"]
            columns = [field.strip() for field in header]
            missing = [column for column in required_columns if column not in columns]
            if missing:
                found = ", ".join(repr(column) for column in columns)
                return [], [
                    f"{path}: missing column {column!r} (columns found: {found})" for column in missing
                ]
            wanted = required_columns + tuple(column for column in optional_columns if column in columns)
            index = {column: columns.index(column) for column in wanted}
            previous_line = reader.line_num
            for fields in reader:
                row_number, previous_line = previous_line + 1, reader.line_num
                if not any(field.strip() for field in fields):
                    continue  # blank line
                if len(fields) > len(columns):
                    problems.append(
                        f"{name} row {row_number}: {len(fields)} fields but the header has {len(columns)} "
                        f"(a comma inside a value?)"
                    )
                    continue
                values = {
                    column: fields[position].strip() if position < len(fields) else ""
                    for column, position in index.items()
                }
                rows.append((row_number, values))
    except UnicodeDecodeError as error:
        return [], [f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"]
    except csv.Error as error:
        return [], [f"{path}: not a readable CSV file near line {reader.line_num} ({error})"]
    except OSError as error:
        return [], [f"{path}: cannot read ({error.strerror or error})"]
    if not rows and not problems:
        problems.append(f"{path}: no rows after the header")
    return rows, problems


def _check_ids(name: str, rows):
    """Problems with the Id column (empty, unsafe, duplicate) and the rows whose Id is usable (first of duplicates)."""
    problems, usable, first_row = [], [], {}
    duplicates: dict[str, list[int]] = {}
    for row_number, values in rows:
        image_id = values["Id"]
        problem = _id_problem(image_id)
        if problem:
            problems.append(f"{name} row {row_number}: {problem}")
            continue
        if image_id in first_row:
            duplicates.setdefault(image_id, [first_row[image_id]]).append(row_number)
            continue
        first_row[image_id] = row_number
        usable.append((row_number, values))
    for image_id, row_numbers in duplicates.items():
        listed = ", ".join(str(number) for number in row_numbers[:-1]) + f" and {row_numbers[-1]}"
        problems.append(f"{name} rows {listed}: duplicate Id {image_id!r}")
    return usable, problems


def _read_label_file(path: Path):
    """An Id,Target file as (DataFrame of its valid rows, problems, every usable Id even where its Target is bad)."""
    rows, problems = _read_csv_rows(path, ("Id", "Target"))
    rows, id_problems = _check_ids(path.name, rows)
    problems += id_problems
    ids, targets, label_lists = [], [], []
    for row_number, values in rows:
        where = f"{path.name} row {row_number} (Id {values['Id']})"
        try:
            parsed = labels_module.parse_target(values["Target"], where=where)
        except ValueError as error:
            problems.append(str(error))
            continue
        ids.append(values["Id"])
        targets.append(labels_module.format_target(parsed))
        label_lists.append(parsed)
    frame = pd.DataFrame(
        {
            "Id": pd.Series(ids, dtype=str),
            "Target": pd.Series(targets, dtype=str),
            "labels": pd.Series(label_lists, dtype=object),
        }
    )
    return frame, problems, [values["Id"] for _, values in rows]


def _read_submission_file(path: Path):
    """An Id[,Predicted] file as (DataFrame of its usable rows in file order, problems)."""
    rows, problems = _read_csv_rows(path, ("Id",), optional_columns=("Predicted",))
    rows, id_problems = _check_ids(path.name, rows)
    problems += id_problems
    frame = pd.DataFrame(
        {
            "Id": pd.Series([values["Id"] for _, values in rows], dtype=str),
            "Predicted": pd.Series([values.get("Predicted", "") for _, values in rows], dtype=str),
        }
    )
    return frame, problems


def read_train_labels(data_dir) -> pd.DataFrame:
    """train.csv as a DataFrame with columns Id, Target (normalised, "0 16") and labels (list[int]).

    Every problem of the file is collected first (missing file or column, empty file, empty,
    non-integer or out-of-range Target, duplicate or unsafe Id), then raised together as a
    DatasetError naming the file, row and Id of each. Row numbers count the header as row 1.
    """
    frame, problems, _ = _read_label_file(Path(data_dir) / TRAIN_CSV)
    if problems:
        raise DatasetError(problems)
    return frame


def read_test_labels(data_dir) -> pd.DataFrame | None:
    """test_labels.csv (written only by the synthetic dataset) like read_train_labels, or None when absent."""
    path = Path(data_dir) / TEST_LABELS_CSV
    if not path.exists():
        return None
    frame, problems, _ = _read_label_file(path)
    if problems:
        raise DatasetError(problems)
    return frame


def read_sample_submission(data_dir) -> pd.DataFrame:
    """sample_submission.csv as a DataFrame with columns Id, Predicted, in file order.

    A submission must keep these Ids in this order. Predicted is optional (read as "" when the
    column is absent). Raises DatasetError for a missing file or Id column, or duplicate/unsafe Ids.
    """
    frame, problems = _read_submission_file(Path(data_dir) / SAMPLE_SUBMISSION_CSV)
    if problems:
        raise DatasetError(problems)
    return frame


# --- images --------------------------------------------------------------------------------------


def _channel_file_names(image_id: str, color: str) -> list[str]:
    return [f"{image_id}_{color}{extension}" for extension in IMAGE_EXTENSIONS]


def image_path(data_dir, split: str, image_id: str, color: str) -> Path:
    """The file of one channel: ``data_dir/split/<image_id>_<color>.png``, else .jpg/.jpeg/.tif/.tiff.

    Raises ValueError for an unknown colour or an Id that is not a plain file name, and
    FileNotFoundError naming the Id, colour and folder when no such file exists.
    """
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; expected one of {', '.join(COLORS)}")
    _check_image_id(image_id)
    folder = Path(data_dir) / split
    for file_name in _channel_file_names(image_id, color):
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    extensions = "/".join(IMAGE_EXTENSIONS)
    raise FileNotFoundError(
        f"{folder}: no {color} image for Id {image_id} (looked for {image_id}_{color}{extensions})"
    )


def _check_complete(path: Path, data: bytes) -> None:
    """Raise ImageError when a PNG or JPEG file is cut short (a partial download or copy)."""
    tail_start = max(0, len(data) - _TRAILER_SEARCH_BYTES)
    if data.startswith(_PNG_SIGNATURE):
        if data.find(_PNG_IEND_CHUNK, tail_start) == -1:
            raise ImageError(f"{path}: truncated PNG (no IEND chunk at the end; the file is incomplete)")
    elif data.startswith(_JPEG_START) and data.find(_JPEG_END, tail_start) == -1:
        # No end-of-image marker near the end: either truncated, or trailing bytes after a complete
        # image. Only a full decode can tell; PIL refuses truncated JPEGs.
        from PIL import Image, ImageFile

        try:
            with Image.open(io.BytesIO(data)) as image:
                if ImageFile.LOAD_TRUNCATED_IMAGES:
                    raise OSError("no end-of-image marker")
                image.load()
        except Exception as error:
            raise ImageError(f"{path}: truncated JPEG (no end-of-image marker; {error})") from None


def _decode_with_pil(path: Path, data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            array = np.asarray(image)
    except Exception as error:
        raise ImageError(f"{path}: not a readable image, or a truncated or corrupt one ({error})") from None
    if mode.startswith("I;16"):
        array = array.astype(np.uint16)
    elif mode == "I":  # 32-bit integer mode: what PIL gives for some 16-bit files
        array = np.clip(array, 0, 65535).astype(np.uint16)
    return array


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Any numeric image as uint8: 16-bit by >> 8, other integers by their type's range, floats by 255 or their max."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        top = float(np.iinfo(array.dtype).max)
        return np.clip(array.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(array.max()) if array.size else 0.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
        return np.clip(array * scale, 0, 255).round().astype(np.uint8)
    raise ValueError(f"unsupported pixel type {array.dtype}")


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    if not (height <= array.shape[0] and width <= array.shape[1]):
        return cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
    while array.shape[0] >= 2 * height and array.shape[1] >= 2 * width:  # halving first: same look, ~2x faster
        array = cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA)


def load_channel(path, image_size: int | None = None) -> np.ndarray:
    """Decode one channel file into an HxW uint8 array, converting what differs from the Kaggle format.

    Conversions (not rejections), for the external HPAv18 images among others:
    - a colour file (RGB, BGR, RGBA) becomes the maximum over its colour channels (alpha ignored):
      an HPAv18 "_green.jpg" holds its signal in one or two colour channels, and the maximum keeps
      its full intensity where an average or luminance would darken it;
    - 16-bit becomes 8-bit by ``>> 8`` (exact for 8-bit data stored as 16-bit), other integer types
      are scaled by their type's range, floats by 255 (values in 0..1) or by their maximum;
    - ``image_size`` (an int) resizes to image_size x image_size, with cv2.INTER_AREA when shrinking
      and bilinear when enlarging; None keeps the native size.

    Decodes with cv2 (fast) and falls back to PIL. Raises FileNotFoundError for a missing file and
    ImageError (a ValueError) naming the file when it is empty, not an image, truncated or corrupt.
    """
    path = Path(path)
    valid_size = isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool) and image_size >= 1
    if image_size is not None and not valid_size:
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    _check_complete(path, data)
    try:
        array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        array = None
    if array is None:
        array = _decode_with_pil(path, data)
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 1 or channels == 2:  # grey, or grey + alpha
            array = array[:, :, 0]
        else:  # BGR / RGB (+ alpha): the order does not matter for the maximum
            array = array[:, :, :3].max(axis=2)
    if array.ndim != 2 or array.size == 0:
        raise ImageError(f"{path}: unexpected image shape {array.shape} (expected a 2-D image)")
    try:
        array = _to_uint8(array)
    except ValueError as error:
        raise ImageError(f"{path}: {error}") from None
    if image_size is not None:
        array = _resize(array, int(image_size), int(image_size))
    return np.ascontiguousarray(array)


def load_sample(
    data_dir, split: str, image_id: str, channels: str = "rgby", image_size: int | None = None
) -> np.ndarray:
    """One sample as an HxWxC uint8 array, channels in the order of CHANNEL_MODES[channels].

    With ``image_size`` None every channel keeps the red channel's native size (a channel of
    another size is resized to it), so the result is always one consistent HxW.
    Raises ValueError for an unknown channel mode, plus whatever image_path/load_channel raise.
    """
    if channels not in CHANNEL_MODES:
        raise ValueError(f"unknown channel mode {channels!r}; expected one of {', '.join(CHANNEL_MODES)}")
    colors = CHANNEL_MODES[channels]
    first = load_channel(image_path(data_dir, split, image_id, colors[0]), image_size)
    result = np.empty(first.shape + (len(colors),), dtype=np.uint8)
    result[:, :, 0] = first
    for position, color in enumerate(colors[1:], start=1):
        channel = load_channel(image_path(data_dir, split, image_id, color), image_size)
        result[:, :, position] = _resize(channel, *first.shape)
    return result


# --- validation ----------------------------------------------------------------------------------


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
            found = next((name for name in _channel_file_names(image_id, color) if name in present), None)
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


def _validate(data_dir, check_images: bool = True, workers: int | None = None, progress: bool = True):
    """validate() plus how many train and test samples and image files were checked."""
    data_dir = Path(data_dir)
    counts = {"train": 0, "test": 0, "files": 0}
    if not data_dir.is_dir():
        return [f"{data_dir}: data folder not found"], counts
    _, problems, train_ids = _read_label_file(data_dir / TRAIN_CSV)
    submission, submission_problems = _read_submission_file(data_dir / SAMPLE_SUBMISSION_CSV)
    problems += submission_problems
    test_ids = submission["Id"].tolist()
    if (data_dir / TEST_LABELS_CSV).exists():
        problems += _read_label_file(data_dir / TEST_LABELS_CSV)[1]

    files = []
    for split, ids, source_name in (("train", train_ids, TRAIN_CSV), ("test", test_ids, SAMPLE_SUBMISSION_CSV)):
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


def validate(data_dir, check_images: bool = True, *, workers: int | None = None, progress: bool = True) -> list[str]:
    """Every problem of a Kaggle-layout data folder, one message each; an empty list means OK.

    Checks train.csv, sample_submission.csv (and test_labels.csv when present) as the readers do,
    that train/ and test/ exist, that every Id of train.csv and sample_submission.csv has its four
    channel files, and (``check_images``) that each file decodes: empty, unreadable and truncated
    files are reported. Images are decoded on ``workers`` threads (None: Python's default) with a
    tqdm progress bar (``progress``). Image files whose Id is in no csv file are not a problem.
    """
    return _validate(data_dir, check_images, workers=workers, progress=progress)[0]


def main_validate(data_dir, check_images: bool = True) -> int:
    """Print every problem of ``data_dir`` (or one OK line) and return the exit code: 0 when OK, 1 otherwise."""
    problems, counts = _validate(data_dir, check_images)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in {data_dir}")
        return 1
    checked = f" ({counts['files']} channel files decoded)" if check_images else " (images not decoded)"
    print(f"OK: {counts['train']} train, {counts['test']} test images checked{checked} in {data_dir}")
    return 0

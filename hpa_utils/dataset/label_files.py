"""The label files: train.csv, sample_submission.csv and test_labels.csv, read with every bad row named."""

from __future__ import annotations

import csv
import os
from pathlib import Path, PureWindowsPath

import pandas as pd

from hpa_utils import errors
from hpa_utils.dataset import labels as labels_module
from hpa_utils.system.environment import SAMPLE_SUBMISSION_CSV, TRAIN_CSV  # how a competition folder is found

TEST_LABELS_CSV = "test_labels.csv"

MAX_PROBLEMS_SHOWN = 50


class DatasetError(errors.InputError):
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


def check_image_id(image_id: str) -> None:
    problem = _id_problem(image_id)
    if problem:
        raise errors.InputError(problem)


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
                return [], [f"{path}: missing column {column!r} (columns found: {found})" for column in missing]
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


def read_label_file(path: Path):
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


def read_submission_file(path: Path):
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
    frame, problems, _ = read_label_file(Path(data_dir) / TRAIN_CSV)
    if problems:
        raise DatasetError(problems)
    return frame


def read_test_labels(data_dir) -> pd.DataFrame | None:
    """test_labels.csv (written only by the synthetic dataset) like read_train_labels, or None when absent."""
    path = Path(data_dir) / TEST_LABELS_CSV
    if not path.exists():
        return None
    frame, problems, _ = read_label_file(path)
    if problems:
        raise DatasetError(problems)
    return frame


def read_sample_submission(data_dir) -> pd.DataFrame:
    """sample_submission.csv as a DataFrame with columns Id, Predicted, in file order.

    A submission must keep these Ids in this order. Predicted is optional (read as "" when the
    column is absent). Raises DatasetError for a missing file or Id column, or duplicate/unsafe Ids.
    """
    frame, problems = read_submission_file(Path(data_dir) / SAMPLE_SUBMISSION_CSV)
    if problems:
        raise DatasetError(problems)
    return frame


def image_counts(data_dir) -> tuple[int, int]:
    """(training images, test images) of a Kaggle-layout folder: its label files' rows."""
    counts = []
    for name in (TRAIN_CSV, SAMPLE_SUBMISSION_CSV):
        with open(Path(data_dir) / name, "rb") as file:
            counts.append(max(0, sum(1 for _ in file) - 1))
    return counts[0], counts[1]

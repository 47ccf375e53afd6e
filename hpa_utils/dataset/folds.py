"""Multilabel-stratified k-fold and validation splits, and their files (folds.csv, split.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpa_utils import errors
from hpa_utils.system import offline_wheels
from hpa_utils.system.atomic_files import atomic_write


def _stratifiers():
    """iterative-stratification's ``ml_stratifiers`` (from the hpa-utils dataset's wheel where it is not installed)."""
    return offline_wheels.import_module("iterstrat.ml_stratifiers")


def _as_multi_hot(multi_hot) -> np.ndarray:
    array = np.asarray(multi_hot)
    if array.ndim != 2:
        raise errors.InputError(f"multi_hot has shape {array.shape}, expected (N, classes)")
    if not np.isin(array, (0, 1)).all():
        raise errors.InputError("multi_hot must contain only 0 and 1")
    return array.astype(np.uint8)


def make_folds(multi_hot, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """The fold (0..n_folds-1) of each sample, multilabel-stratified so every class spreads evenly over folds."""
    multi_hot = _as_multi_hot(multi_hot)
    if n_folds < 2:
        raise errors.InputError(f"n_folds must be at least 2, got {n_folds}")
    if len(multi_hot) < n_folds:
        raise errors.InputError(f"cannot make {n_folds} folds from {len(multi_hot)} samples")
    splitter = _stratifiers().MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(multi_hot), -1, dtype=np.int64)
    for fold, (_, validation_rows) in enumerate(splitter.split(np.zeros(len(multi_hot)), multi_hot)):
        folds[validation_rows] = fold
    return folds


def validation_split(multi_hot, validation_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean ``is_validation`` per sample: a multilabel-stratified hold-out of about ``validation_fraction``."""
    multi_hot = _as_multi_hot(multi_hot)
    if not 0 < validation_fraction < 1:
        raise errors.InputError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    if len(multi_hot) < 2:
        raise errors.InputError(f"cannot split {len(multi_hot)} samples into training and validation")
    splitter = _stratifiers().MultilabelStratifiedShuffleSplit(
        n_splits=1, test_size=validation_fraction, random_state=seed
    )
    _, validation_rows = next(splitter.split(np.zeros(len(multi_hot)), multi_hot))
    is_validation = np.zeros(len(multi_hot), dtype=bool)
    is_validation[validation_rows] = True
    return is_validation


def _write_assignment(path, ids, values, column: str) -> Path:
    ids = [str(image_id) for image_id in ids]
    values = np.asarray(values)
    if values.shape != (len(ids),):
        raise errors.InputError(f"{column} has shape {values.shape} but there are {len(ids)} ids")
    duplicates = pd.Index(ids)[pd.Index(ids).duplicated()].unique()
    if len(duplicates):
        raise errors.InputError(f"duplicate Ids: {errors.show_ids(duplicates)}")
    frame = pd.DataFrame({"Id": ids, column: values.astype(np.int64)})
    with atomic_write(path) as temporary:
        frame.to_csv(temporary, index=False)
    return Path(path)


def _read_assignment(path, column: str, expected_ids) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise errors.MissingError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype={"Id": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise errors.InputError(f"{path}: not a readable CSV file ({error})") from error
    missing_columns = [name for name in ("Id", column) if name not in frame.columns]
    if missing_columns:
        raise errors.InputError(f"{path}: missing column(s) {missing_columns}, found {list(frame.columns)}")
    frame = frame[["Id", column]]
    duplicates = frame["Id"][frame["Id"].duplicated()].unique()
    if len(duplicates):
        raise errors.InputError(f"{path}: duplicate Ids: {errors.show_ids(duplicates)}")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad_rows = frame["Id"][values.isna() | (values != values.round()) | (values < 0)]
    if len(bad_rows):
        raise errors.InputError(f"{path}: {column} is not a non-negative integer for Ids {errors.show_ids(bad_rows)}")
    frame = frame.assign(**{column: values.astype(np.int64)})
    if expected_ids is not None:
        expected_ids = [str(image_id) for image_id in expected_ids]
        present = set(frame["Id"])
        expected = set(expected_ids)
        missing = [image_id for image_id in expected_ids if image_id not in present]
        extra = [image_id for image_id in frame["Id"] if image_id not in expected]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing Ids {errors.show_ids(missing)}")
            if extra:
                problems.append(f"extra Ids {errors.show_ids(extra)}")
            raise errors.InputError(f"{path}: Ids do not match the expected ones: {'; '.join(problems)}")
        frame = frame.set_index("Id").loc[expected_ids].reset_index()
    return frame


def write_folds(path, ids, folds) -> Path:
    """Write folds.csv (Id,fold) atomically."""
    return _write_assignment(path, ids, folds, "fold")


def read_folds(path, expected_ids=None) -> pd.DataFrame:
    """Read folds.csv as DataFrame[Id, fold]; with ``expected_ids``, check they match and follow their order.

    Raises ValueError naming the missing and extra Ids, duplicates, or rows whose fold is not an integer.
    """
    return _read_assignment(path, "fold", expected_ids)


def write_split(path, ids, is_validation) -> Path:
    """Write split.csv (Id,is_validation with 1 for validation, 0 for training) atomically."""
    is_validation = np.asarray(is_validation)
    if is_validation.dtype != bool and not np.isin(is_validation, (0, 1)).all():
        raise errors.InputError("is_validation must be boolean (or 0/1)")
    return _write_assignment(path, ids, is_validation, "is_validation")


def read_split(path, expected_ids=None) -> pd.DataFrame:
    """Read split.csv as DataFrame[Id, is_validation (bool)]; ``expected_ids`` as in read_folds."""
    frame = _read_assignment(path, "is_validation", expected_ids)
    bad_rows = frame["Id"][~frame["is_validation"].isin((0, 1))]
    if len(bad_rows):
        raise errors.InputError(f"{path}: is_validation is not 0 or 1 for Ids {errors.show_ids(bad_rows)}")
    return frame.assign(is_validation=frame["is_validation"].astype(bool))

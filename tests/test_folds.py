"""Tests of hpa_utils.dataset.folds: multilabel-stratified folds and splits on the real label table, and their files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpa_utils import errors
from hpa_utils.dataset import folds, labels

REAL_LABELS = Path(__file__).parent / "data"  # the competition's real label files


@pytest.fixture(scope="module")
def real_train():
    """Ids and (31072, 28) multi-hot targets of the competition's train.csv."""
    path = REAL_LABELS / "train.csv"
    frame = pd.read_csv(path, dtype=str)
    targets = [labels.parse_target(text, where=f"{path} row {row + 2}") for row, text in enumerate(frame["Target"])]
    return frame["Id"].tolist(), labels.to_multi_hot(targets)


def small_targets(rows=120, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((rows, 28)) < 0.15).astype(np.uint8)
    targets[np.arange(rows), rng.integers(0, 28, rows)] = 1  # every image has a label
    return targets


def test_make_folds_assigns_every_sample_and_is_reproducible():
    targets = small_targets()
    assignment = folds.make_folds(targets, n_folds=5, seed=0)
    assert assignment.shape == (120,)
    assert set(assignment.tolist()) == {0, 1, 2, 3, 4}
    assert np.bincount(assignment).min() >= 20
    np.testing.assert_array_equal(assignment, folds.make_folds(targets, n_folds=5, seed=0))
    assert not np.array_equal(assignment, folds.make_folds(targets, n_folds=5, seed=1))
    with pytest.raises(errors.InputError, match="n_folds"):
        folds.make_folds(targets, n_folds=1)
    with pytest.raises(errors.InputError, match="only 0 and 1"):
        folds.make_folds(targets * 2)


def test_validation_split_is_reproducible():
    targets = small_targets()
    is_validation = folds.validation_split(targets, validation_fraction=0.25, seed=0)
    assert is_validation.dtype == bool
    assert abs(is_validation.mean() - 0.25) < 0.05
    np.testing.assert_array_equal(is_validation, folds.validation_split(targets, 0.25, seed=0))
    assert not np.array_equal(is_validation, folds.validation_split(targets, 0.25, seed=1))
    with pytest.raises(errors.InputError, match="validation_fraction"):
        folds.validation_split(targets, validation_fraction=1.0)


def test_real_train_folds_spread_every_class_evenly(real_train):
    ids, targets = real_train
    assert len(ids) == 31072
    class_counts = targets.sum(axis=0)
    assert class_counts[27] == 11  # Rods & rings, the rarest class
    assignment = folds.make_folds(targets, n_folds=5, seed=0)
    per_fold = np.stack([targets[assignment == fold].sum(axis=0) for fold in range(5)])
    # Each class, the rarest included, is as even over the folds as its count allows:
    # every fold holds floor(count / 5) or ceil(count / 5) images of it.
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 1).all(), per_fold
    assert (per_fold >= class_counts // 5).all()
    assert (per_fold <= -(-class_counts // 5)).all()
    assert np.abs(np.bincount(assignment) - len(ids) / 5).max() < 0.01 * len(ids)


def test_real_train_validation_split_keeps_every_class_on_both_sides(real_train):
    _, targets = real_train
    is_validation = folds.validation_split(targets, validation_fraction=0.2, seed=0)
    assert abs(is_validation.mean() - 0.2) < 0.005
    assert targets[is_validation].sum(axis=0).min() >= 2
    assert targets[~is_validation].sum(axis=0).min() >= 2
    validation_share = targets[is_validation].sum(axis=0) / targets.sum(axis=0)
    assert np.abs(validation_share - 0.2).max() < 0.05


def test_folds_file_round_trip_and_order(tmp_path):
    path = tmp_path / "folds.csv"
    ids = ["c", "a", "b", "d"]
    folds.write_folds(path, ids, np.array([1, 0, 1, 0]))
    assert path.read_text().splitlines() == ["Id,fold", "c,1", "a,0", "b,1", "d,0"]
    assert sorted(item.name for item in tmp_path.iterdir()) == ["folds.csv"]  # no temporary left behind
    frame = folds.read_folds(path)
    assert frame["Id"].tolist() == ids and frame["fold"].tolist() == [1, 0, 1, 0]
    reordered = folds.read_folds(path, expected_ids=["a", "b", "c", "d"])
    assert reordered["fold"].tolist() == [0, 1, 1, 0]


def test_read_folds_names_missing_and_extra_ids(tmp_path):
    path = folds.write_folds(tmp_path / "folds.csv", ["a", "b", "c"], [0, 1, 2])
    with pytest.raises(errors.InputError, match=r"missing Ids 1 \(d\).*extra Ids 1 \(c\)"):
        folds.read_folds(path, expected_ids=["a", "b", "d"])
    path.write_text("Id,fold\na,0\na,1\n")
    with pytest.raises(errors.InputError, match=r"duplicate Ids: 1 \(a\)"):
        folds.read_folds(path)
    path.write_text("Id,fold\na,0\nb,two\n")
    with pytest.raises(errors.InputError, match=r"fold is not a non-negative integer for Ids 1 \(b\)"):
        folds.read_folds(path)
    path.write_text("Id,split\na,0\n")
    with pytest.raises(errors.InputError, match=r"missing column\(s\) \['fold'\]"):
        folds.read_folds(path)
    with pytest.raises(errors.MissingError, match="nowhere.csv"):
        folds.read_folds(tmp_path / "nowhere.csv")
    with pytest.raises(errors.InputError, match=r"duplicate Ids: 1 \(x\)"):
        folds.write_folds(tmp_path / "other.csv", ["x", "x"], [0, 1])


def test_split_file_round_trip(tmp_path):
    path = tmp_path / "split.csv"
    folds.write_split(path, ["a", "b", "c"], np.array([True, False, True]))
    assert path.read_text().splitlines() == ["Id,is_validation", "a,1", "b,0", "c,1"]
    frame = folds.read_split(path, expected_ids=["c", "b", "a"])
    assert frame["is_validation"].dtype == bool
    assert frame["Id"].tolist() == ["c", "b", "a"]
    assert frame["is_validation"].tolist() == [True, False, True]
    path.write_text("Id,is_validation\na,1\nb,3\n")
    with pytest.raises(errors.InputError, match=r"not 0 or 1 for Ids 1 \(b\)"):
        folds.read_split(path)

"""The k-fold stage's parts: folds, which to train, the merge of finished folds, a fold's starting model."""

import numpy as np
import pytest

from hpa_utils import errors
from hpa_utils.dataset import labels
from hpa_utils.pipeline import kfold
from hpa_utils.stages import stage_files


def test_folds_to_train_defaults_to_all_and_rejects_bad_folds():
    assert kfold.folds_to_train([], 3) == [0, 1, 2]
    assert kfold.folds_to_train([2], 3) == [2]
    with pytest.raises(errors.InputError, match=r"FOLDS \[3\]: each fold must be an integer 0..2"):
        kfold.folds_to_train([3], 3)
    assert kfold.folds_to_train([], 3, from_kernels=True) == []  # the merge kernel trains none


def test_folds_are_written_once_and_reused(tmp_path):
    ids = [f"id{i}" for i in range(40)]
    targets = labels.to_multi_hot([[i % 3] for i in range(40)])
    first = kfold.load_folds(tmp_path, ids, targets, n_folds=4, seed=1)
    again = kfold.load_folds(tmp_path, ids, targets, n_folds=4, seed=99)  # the file wins over the seed
    np.testing.assert_array_equal(first, again)
    with pytest.raises(errors.InputError, match="has 4 folds but N_FOLDS = 5"):
        kfold.load_folds(tmp_path, ids, targets, n_folds=5)


def write_fold(stage_dir, fold, rows, n_test, value):
    fold_dir = stage_dir / f"fold_{fold}"
    stage_files.save_array(fold_dir / "oof.npy", np.full((rows, 28), value, np.float32))
    stage_files.save_array(fold_dir / "test_pred.npy", np.full((n_test, 28), value, np.float32))
    (fold_dir / "metrics.json").write_text("{}")


def test_merge_covers_each_image_once_from_whatever_folds_exist(tmp_path):
    fold_of = np.array([0, 1, 0, 1, 1])
    write_fold(tmp_path, 0, 2, 3, 0.25)
    oof, _, finished = kfold.merge_folds(tmp_path, fold_of, 3)
    assert finished == [0]
    assert np.isnan(oof[fold_of == 1]).all() and (oof[fold_of == 0] == 0.25).all()
    write_fold(tmp_path, 1, 3, 3, 0.75)
    oof, test_predictions, finished = kfold.merge_folds(tmp_path, fold_of, 3)
    assert finished == [0, 1] and not np.isnan(oof).any()
    assert [prediction[0, 0] for prediction in test_predictions] == [0.25, 0.75]  # each fold's, for the mean


def test_merge_refuses_predictions_that_do_not_fit_the_folds(tmp_path):
    write_fold(tmp_path, 0, 3, 3, 0.5)
    with pytest.raises(errors.InputError, match="fold_0: predictions of shape .* do not fit fold 0 \\(2 images\\)"):
        kfold.merge_folds(tmp_path, np.array([0, 1, 0]), 3)


def test_images_a_start_trained_on_are_counted_and_never_scored(tmp_path, capsys):
    from hpa_utils import stages
    from hpa_utils.dataset import folds

    ids = [f"id{i}" for i in range(6)]
    assert not kfold.seen_in_training(None, ids).any() and capsys.readouterr().out == ""  # from WEIGHTS: honest
    start = tmp_path / "03_upscale"
    folds.write_split(start / stages.SPLIT_FILE, ids, np.array([0, 1, 0, 0, 1, 0], bool))
    seen = kfold.seen_in_training(start, ids)
    assert seen.tolist() == [True, False, True, True, False, True]  # outside its validation split: trained on
    assert "START_FROM 03_upscale trained on 4 of the 6 images" in capsys.readouterr().out
    oof = np.full((6, 28), 0.5, np.float32)
    oof[5] = np.nan  # a fold not finished (a time limit stopped the stage)
    assert kfold.rows_to_score(oof, [2], stopped_early="time").tolist() == [0, 1, 2, 3, 4]
    assert kfold.rows_to_score(oof, [2], stopped_early="time", seen=seen).tolist() == [1, 4]
    assert kfold.images_seen_in_training(oof, seen) == 3
    (start / stages.SPLIT_FILE).unlink()  # a start that kept no split: it may have seen everything
    with pytest.raises(errors.InputError, match="trained on every image the folds hold out"):
        kfold.seen_in_training(start, ids)

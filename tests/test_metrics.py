"""Tests of hpa_utils.results.metrics: macro F1 over 28 classes, thresholds, the prior baseline."""

import json

import numpy as np
import pytest

from hpa_utils import errors
from hpa_utils.dataset import labels
from hpa_utils.results import metrics


def random_problem(rows=400, seed=0):
    """Multi-hot truth and noisy probabilities that carry signal about it."""
    rng = np.random.default_rng(seed)
    frequencies = np.linspace(0.05, 0.5, labels.NUM_CLASSES)
    y_true = (rng.random((rows, labels.NUM_CLASSES)) < frequencies).astype(np.uint8)
    probabilities = np.clip(0.35 * y_true + 0.6 * rng.random(y_true.shape), 0, 1)
    return y_true, probabilities


def hand_f1(y_true, y_pred):
    """Per-class F1 from counts, 0 where a class is neither true nor predicted."""
    scores = []
    for label in range(labels.NUM_CLASSES):
        true_positives = np.sum((y_true[:, label] == 1) & (y_pred[:, label] == 1))
        false_positives = np.sum((y_true[:, label] == 0) & (y_pred[:, label] == 1))
        false_negatives = np.sum((y_true[:, label] == 1) & (y_pred[:, label] == 0))
        denominator = 2 * true_positives + false_positives + false_negatives
        scores.append(2 * true_positives / denominator if denominator else 0.0)
    return np.array(scores)


def test_macro_f1_matches_counting_by_hand():
    y_true, probabilities = random_problem()
    y_pred = (probabilities >= 0.5).astype(np.uint8)
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(hand_f1(y_true, y_pred).mean())
    np.testing.assert_allclose(metrics.per_class_f1(y_true, y_pred), hand_f1(y_true, y_pred))
    assert metrics.per_class_f1(y_true, y_pred).shape == (28,)


def test_macro_f1_averages_over_all_28_classes_even_absent_ones():
    y_true = labels.to_multi_hot([[0], [1], [2, 0]])
    # Perfect on the 3 classes present; the 25 absent classes count as 0, as on the leaderboard.
    assert metrics.macro_f1(y_true, y_true) == pytest.approx(3 / 28)
    everything = labels.to_multi_hot([list(range(28))] * 28)
    assert metrics.macro_f1(everything, everything) == pytest.approx(1.0)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(errors.InputError, match=r"\(3, 28\).*\(2, 28\)"):
        metrics.macro_f1(np.zeros((3, 28)), np.zeros((2, 28)))
    with pytest.raises(errors.InputError, match=r"\(3, 27\)"):
        metrics.per_class_f1(np.zeros((3, 28)), np.zeros((3, 27)))
    with pytest.raises(errors.InputError, match=r"\(4, 28\).*\(5, 28\)"):
        metrics.best_global_threshold(np.zeros((4, 28)), np.zeros((5, 28)))
    with pytest.raises(errors.InputError, match="multi-hot"):
        metrics.macro_f1(np.zeros((3, 28)), np.full((3, 28), 0.7))
    with pytest.raises(errors.InputError, match="NaN"):
        metrics.per_class_thresholds(np.zeros((3, 28)), np.full((3, 28), np.nan))


def test_apply_thresholds_scalar_vector_and_at_least_one():
    probabilities = np.full((3, 28), 0.1)
    probabilities[0, 5] = 0.9
    probabilities[1, 7] = 0.3
    probabilities[1, 9] = 0.2
    plain = metrics.apply_thresholds(probabilities, 0.5, at_least_one=False)
    assert plain.dtype == np.uint8
    np.testing.assert_array_equal(plain, labels.to_multi_hot([[5], [], []]))
    # The empty rows get their most probable class (row 2 ties: the first, class 0).
    np.testing.assert_array_equal(metrics.apply_thresholds(probabilities, 0.5), labels.to_multi_hot([[5], [7], [0]]))
    thresholds = np.full(28, 0.5)
    thresholds[9] = 0.15
    at_nine = metrics.apply_thresholds(probabilities, thresholds, at_least_one=False)
    np.testing.assert_array_equal(at_nine, labels.to_multi_hot([[5], [9], []]))
    with pytest.raises(errors.InputError, match=r"\(27,\)"):
        metrics.apply_thresholds(probabilities, np.full(27, 0.5))


def test_best_global_threshold_is_the_best_candidate():
    y_true, probabilities = random_problem()
    candidates = np.linspace(0.05, 0.95, 91)
    threshold, score = metrics.best_global_threshold(y_true, probabilities, candidates)
    brute_force = [metrics.macro_f1(y_true, (probabilities >= value).astype(np.uint8)) for value in candidates]
    assert score == pytest.approx(max(brute_force))
    assert threshold == pytest.approx(candidates[int(np.argmax(brute_force))])
    # Separable scores: any threshold between the two levels is perfect; ties go to the lowest.
    y_true = labels.to_multi_hot([list(range(28)), [], list(range(0, 28, 2))])
    separable = np.where(y_true == 1, 0.8, 0.3)
    assert metrics.best_global_threshold(y_true, separable, candidates) == (pytest.approx(0.31), pytest.approx(1.0))


def test_per_class_thresholds_maximise_each_class_f1():
    y_true, probabilities = random_problem(rows=300, seed=1)
    thresholds = metrics.per_class_thresholds(y_true, probabilities, min_positives=5)
    assert thresholds.shape == (28,)
    positives = y_true.sum(axis=0)
    assert (positives >= 5).all()
    achieved = metrics.per_class_f1(y_true, metrics.apply_thresholds(probabilities, thresholds, at_least_one=False))
    for label in range(28):
        best = max(
            hand_f1(y_true, (probabilities >= value).astype(np.uint8))[label]
            for value in np.unique(probabilities[:, label])
        )
        assert achieved[label] == pytest.approx(best), label
    # Tuned per class beats (or equals) one threshold for all on the data it was tuned on.
    _, global_f1 = metrics.best_global_threshold(y_true, probabilities)
    assert achieved.mean() >= global_f1


def test_rare_classes_fall_back_to_the_global_threshold():
    y_true, probabilities = random_problem(rows=300, seed=2)
    y_true[:, 27] = 0
    y_true[:3, 27] = 1  # only 3 positives: too few to tune on
    global_threshold, _ = metrics.best_global_threshold(y_true, probabilities)
    thresholds = metrics.per_class_thresholds(y_true, probabilities, min_positives=5)
    assert thresholds[27] == pytest.approx(global_threshold)
    assert metrics.per_class_thresholds(y_true, probabilities, min_positives=5, fallback=0.42)[27] == pytest.approx(
        0.42
    )
    # With the guard lowered the class is tuned: 3 positives are enough for a threshold of their own.
    tuned = metrics.per_class_thresholds(y_true, probabilities, min_positives=3, fallback=0.42)
    assert tuned[27] != pytest.approx(0.42)
    np.testing.assert_allclose(tuned[:27], thresholds[:27])


def test_threshold_report_is_consistent_and_json_ready():
    y_true, probabilities = random_problem(rows=300, seed=3)
    best_global, _ = metrics.best_global_threshold(y_true, probabilities)
    per_class = metrics.per_class_thresholds(y_true, probabilities, 5, fallback=best_global)
    report = metrics.threshold_report(y_true, probabilities, best_global, per_class)
    assert set(report) == {
        "f1_at_0.5",
        "best_global_threshold",
        "f1_at_best_global",
        "per_class_thresholds",
        "f1_at_per_class",
    }
    json.dumps(report)
    assert report["f1_at_0.5"] == pytest.approx(metrics.macro_f1(y_true, (probabilities >= 0.5).astype(np.uint8)))
    assert report["f1_at_best_global"] >= report["f1_at_0.5"]
    thresholds = np.array(report["per_class_thresholds"])
    assert thresholds.shape == (28,)
    expected = metrics.macro_f1(y_true, metrics.apply_thresholds(probabilities, thresholds, at_least_one=True))
    assert report["f1_at_per_class"] == pytest.approx(expected)


def test_prior_baseline_predicts_the_same_labels_for_every_image():
    rng = np.random.default_rng(4)
    frequencies = np.linspace(0.01, 0.6, 28)
    train_targets = (rng.random((500, 28)) < frequencies).astype(np.uint8)
    y_true = (rng.random((200, 28)) < frequencies).astype(np.uint8)
    baseline = metrics.prior_baseline_f1(train_targets, y_true)
    observed = train_targets.mean(axis=0)
    # By hand: each candidate predicts one fixed label set (the top class when none passes).
    scores = []
    for threshold in metrics.GLOBAL_THRESHOLD_CANDIDATES:
        label_set = np.flatnonzero(observed >= threshold)
        if label_set.size == 0:
            label_set = [int(np.argmax(observed))]
        prediction = np.zeros_like(y_true)
        prediction[:, label_set] = 1
        scores.append(hand_f1(y_true, prediction).mean())
    assert baseline == pytest.approx(max(scores))
    # A model with real signal beats it.
    informative = np.clip(0.5 * y_true + 0.5 * rng.random(y_true.shape), 0, 1)
    assert metrics.best_global_threshold(y_true, informative)[1] > baseline
    with pytest.raises(errors.InputError, match=r"train_targets has shape \(500, 27\)"):
        metrics.prior_baseline_f1(train_targets[:, :27], y_true)


def test_prior_baseline_on_the_real_label_distribution_is_low():
    sets, counts = labels.train_label_sets()
    real_targets = labels.to_multi_hot([label_set for label_set, count in zip(sets, counts) for _ in range(count)])
    assert len(real_targets) == 31072
    subset = real_targets[::8]
    baseline = metrics.prior_baseline_f1(real_targets, subset)
    # Predicting the common classes for everyone scores only a few points of macro F1.
    assert 0.02 < baseline < 0.15

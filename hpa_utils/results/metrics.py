"""The competition metric (macro F1 over the 28 classes) and the thresholds that turn probabilities into labels."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_curve

from hpa_utils import errors
from hpa_utils.dataset.labels import NUM_CLASSES

GLOBAL_THRESHOLD_CANDIDATES = np.linspace(0.01, 0.99, 99)  # a young model is unsure: its best may be low
ALL_CLASSES = list(range(NUM_CLASSES))


def _as_matrix(values, name: str, dtype=None) -> np.ndarray:
    """``values`` as an (N, 28) array; ValueError naming ``name`` and its shape otherwise."""
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 2 or array.shape[1] != NUM_CLASSES:
        raise errors.InputError(f"{name} has shape {array.shape}, expected (N, {NUM_CLASSES})")
    return array


def _check_pair(y_true, other, other_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate a multi-hot ``y_true`` and a second (N, 28) array of the same shape."""
    y_true = _as_matrix(y_true, "y_true")
    other = _as_matrix(other, other_name)
    if y_true.shape != other.shape:
        raise errors.InputError(f"y_true has shape {y_true.shape} but {other_name} has shape {other.shape}")
    if not np.isin(y_true, (0, 1)).all():
        raise errors.InputError("y_true must be multi-hot (only 0 and 1)")
    if not np.isfinite(other).all():
        raise errors.InputError(f"{other_name} contains NaN or infinite values")
    return y_true.astype(np.uint8), other


def macro_f1(y_true, y_pred) -> float:
    """Macro F1 over all 28 classes, as the leaderboard computes it (a class never true nor predicted scores 0).

    Both arguments are (N, 28) multi-hot arrays; raises ValueError naming both shapes when they differ.
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "y_pred")
    if not np.isin(y_pred, (0, 1)).all():
        raise errors.InputError("y_pred must be multi-hot (only 0 and 1); use apply_thresholds on probabilities")
    return float(f1_score(y_true, y_pred.astype(np.uint8), average="macro", labels=ALL_CLASSES, zero_division=0))


def per_class_f1(y_true, y_pred) -> np.ndarray:
    """F1 of each of the 28 classes, shape (28,)."""
    y_true, y_pred = _check_pair(y_true, y_pred, "y_pred")
    if not np.isin(y_pred, (0, 1)).all():
        raise errors.InputError("y_pred must be multi-hot (only 0 and 1); use apply_thresholds on probabilities")
    return f1_score(y_true, y_pred.astype(np.uint8), average=None, labels=ALL_CLASSES, zero_division=0)


def apply_thresholds(probabilities, thresholds, at_least_one: bool = True) -> np.ndarray:
    """Multi-hot uint8 labels: class c is on where probability >= threshold[c].

    ``thresholds`` is one number or a (28,) array. With ``at_least_one`` every row keeps at least its
    most probable class (Kaggle scores an empty prediction as no labels at all).
    """
    probabilities = _as_matrix(probabilities, "probabilities", dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 0 and thresholds.shape != (NUM_CLASSES,):
        raise errors.InputError(f"thresholds has shape {thresholds.shape}, expected a number or ({NUM_CLASSES},)")
    predicted = (probabilities >= thresholds).astype(np.uint8)
    if at_least_one and len(predicted):
        empty_rows = np.flatnonzero(predicted.sum(axis=1) == 0)
        predicted[empty_rows, probabilities[empty_rows].argmax(axis=1)] = 1
    return predicted


def best_global_threshold(
    y_true, probabilities, candidates=GLOBAL_THRESHOLD_CANDIDATES, at_least_one: bool = False
) -> tuple[float, float]:
    """The one threshold for all classes (among ``candidates``) with the best macro F1: (threshold, f1).

    Ties go to the lowest candidate.
    """
    y_true, probabilities = _check_pair(y_true, probabilities, "probabilities")
    candidates = np.asarray(candidates, dtype=np.float64).ravel()
    if candidates.size == 0:
        raise errors.InputError("candidates is empty")
    scores = [macro_f1(y_true, apply_thresholds(probabilities, threshold, at_least_one)) for threshold in candidates]
    best = int(np.argmax(scores))
    return float(candidates[best]), float(scores[best])


def per_class_thresholds(y_true, probabilities, min_positives: int = 5, fallback=None) -> np.ndarray:
    """Per-class thresholds (28,) that maximise each class's F1 on the precision-recall curve.

    A class with fewer than ``min_positives`` positives in ``y_true`` gets ``fallback`` instead (default:
    the best global threshold), because a threshold tuned on a handful of images is noise.
    """
    y_true, probabilities = _check_pair(y_true, probabilities, "probabilities")
    if min_positives < 1:
        raise errors.InputError(f"min_positives must be at least 1, got {min_positives}")
    if fallback is None:
        fallback, _ = best_global_threshold(y_true, probabilities)
    thresholds = np.full(NUM_CLASSES, float(fallback))
    positives = y_true.sum(axis=0)
    for label in range(NUM_CLASSES):
        if positives[label] >= min_positives:
            thresholds[label] = best_f1_threshold(y_true[:, label], probabilities[:, label])
    return thresholds


def best_f1_threshold(truth, probability) -> float:
    """One class's threshold with the best F1: the best point of its precision-recall curve (scikit-learn)."""
    precision, recall, candidates = precision_recall_curve(truth, probability)
    # The last (precision 1, recall 0) point has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    scores = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(candidates[int(np.argmax(scores))])


def threshold_report(y_true, probabilities, global_threshold: float, class_thresholds) -> dict:
    """Macro F1 at 0.5, at ``global_threshold`` and at the per-class ``class_thresholds`` (JSON-ready dict), the
    thresholds as ``best_global_threshold`` and ``per_class_thresholds`` found them (04 calls both).

    "f1_at_0.5" and "f1_at_best_global" threshold plainly; "f1_at_per_class" keeps at least one label per row, as a
    submission does.
    """
    y_true, probabilities = _check_pair(y_true, probabilities, "probabilities")
    class_thresholds = np.asarray(class_thresholds, dtype=np.float64)
    at_global = apply_thresholds(probabilities, global_threshold, at_least_one=False)
    return {
        "f1_at_0.5": macro_f1(y_true, apply_thresholds(probabilities, 0.5, at_least_one=False)),
        "best_global_threshold": float(global_threshold),
        "f1_at_best_global": macro_f1(y_true, at_global),
        "per_class_thresholds": [float(value) for value in class_thresholds],
        "f1_at_per_class": macro_f1(y_true, apply_thresholds(probabilities, class_thresholds, at_least_one=True)),
    }


def prior_baseline_f1(train_targets, y_true) -> float:
    """Macro F1 of predicting the training class frequencies as probabilities for every image.

    The score each stage must beat: every image gets the same labels (best global threshold, at least one).
    """
    train_targets = _as_matrix(train_targets, "train_targets")
    if len(train_targets) == 0:
        raise errors.InputError("train_targets is empty")
    y_true = _as_matrix(y_true, "y_true")
    frequencies = train_targets.mean(axis=0)
    probabilities = np.broadcast_to(frequencies, y_true.shape)
    _, score = best_global_threshold(y_true, probabilities, at_least_one=True)
    return score


BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def _resample_counts(n_images: int, resamples: int, seed: int):
    """Bootstrap resamples of ``n_images`` images as count vectors (how often each image is drawn), in chunks.

    The same ``n_images``, ``resamples`` and ``seed`` give the same resamples: two predictions of the same
    images are compared on the same draws (a paired bootstrap).
    """
    if n_images < 1:
        raise errors.InputError("cannot bootstrap an empty set of images")
    if resamples < 1:
        raise errors.InputError(f"resamples must be at least 1, got {resamples}")
    generator = np.random.default_rng(seed)
    chunk = max(1, min(resamples, 5_000_000 // n_images))  # at most 5 M draws (40 MB) at a time: same stream
    for start in range(0, resamples, chunk):
        draws = generator.integers(0, n_images, size=(min(chunk, resamples - start), n_images))
        offsets = np.arange(len(draws))[:, None] * n_images  # one bincount for the whole chunk
        counts = np.bincount((draws + offsets).ravel(), minlength=draws.size).reshape(draws.shape)
        yield counts.astype(np.float32)


def _weighted_macro_f1(counts: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Macro F1 of each resample (rows of ``counts``), as macro_f1 computes it on the drawn images."""
    truth, predicted = y_true.astype(np.float32), y_pred.astype(np.float32)
    true_positives = counts @ (truth * predicted)
    false_positives = counts @ ((1 - truth) * predicted)
    false_negatives = counts @ (truth * (1 - predicted))
    denominator = 2 * true_positives + false_positives + false_negatives
    per_class = np.divide(
        2 * true_positives, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )  # a class neither true nor predicted in a resample scores 0, as on the leaderboard
    return per_class.mean(axis=1)


def bootstrap_macro_f1(
    y_true, predictions, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """Macro F1 of each of ``predictions`` (a list of multi-hot (N, 28) arrays of the same images) on
    ``resamples`` bootstrap draws of the images: shape (len(predictions), resamples).

    Every prediction is scored on the same draws, so the rows can be subtracted (a paired bootstrap).
    """
    checked = [_check_pair(y_true, prediction, "y_pred") for prediction in predictions]
    if not checked:
        raise errors.InputError("predictions is empty")
    for _, prediction in checked:
        if not np.isin(prediction, (0, 1)).all():
            raise errors.InputError("y_pred must be multi-hot (only 0 and 1); use apply_thresholds on probabilities")
    truth = checked[0][0]
    scores = [[] for _ in checked]
    for counts in _resample_counts(len(truth), resamples, seed):
        for row, (_, prediction) in zip(scores, checked):
            row.append(_weighted_macro_f1(counts, truth, prediction))
    return np.array([np.concatenate(row) for row in scores])


def interval(values, level: float = 0.95) -> list[float]:
    """The central ``level`` percentile interval of bootstrap ``values``: [low, high]."""
    values = np.asarray(values, dtype=np.float64)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def f1_interval(y_true, y_pred, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> list[float]:
    """95 % percentile bootstrap interval of macro F1 over the images (the threshold is fixed: it was chosen before).

    A draw that lacks every image of a rare class scores that class 0 (as the leaderboard would), so with rare
    classes the interval leans low, and a model that gets a rare class right can score above its interval.
    """
    return interval(bootstrap_macro_f1(y_true, [y_pred], resamples, seed)[0])


def paired_difference(
    y_true, y_pred, y_pred_before, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict:
    """Macro F1 of ``y_pred`` minus that of ``y_pred_before`` on the same images, with its 95 % paired
    bootstrap interval: {"difference", "ci95", "share_better"} (share of resamples where y_pred scores higher)."""
    scores = bootstrap_macro_f1(y_true, [y_pred, y_pred_before], resamples, seed)
    differences = scores[0] - scores[1]
    return {
        "difference": macro_f1(y_true, y_pred) - macro_f1(y_true, y_pred_before),
        "ci95": interval(differences),
        "share_better": float((differences > 0).mean()),
    }

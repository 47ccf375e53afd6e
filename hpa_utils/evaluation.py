"""A stage's scores: macro F1 at 0.5 and at the best single threshold with its 95 % interval, the prior; 04's
out-of-fold and test scores. What the images are comes from the stage record (``stages.Stage.scored_on``)."""

from __future__ import annotations

import pandas as pd

from hpa_utils import dataset, metrics, predict, stage_files, stages


def _headline(probabilities, targets, train_targets, threshold: float) -> dict:
    best = metrics.apply_thresholds(probabilities, threshold, at_least_one=False)
    at_half = metrics.apply_thresholds(probabilities, 0.5, at_least_one=False)
    return {
        "images_scored": len(targets),
        "f1_at_0.5": metrics.macro_f1(targets, at_half),
        stages.HEADLINE: metrics.macro_f1(targets, best),
        stages.HEADLINE + "_ci95": metrics.f1_interval(targets, best),
        "best_global_threshold": float(threshold),
        "prior_baseline_f1": metrics.prior_baseline_f1(train_targets, targets),
    }


def evaluate(probabilities, targets, train_targets) -> dict:
    """Scores of held-out ``probabilities``: macro F1 at 0.5, at the best global threshold (with its 95 % bootstrap
    interval over the images, the threshold held fixed), per-class F1 there, and the prior baseline."""
    threshold, _ = metrics.best_global_threshold(targets, probabilities)
    best = metrics.apply_thresholds(probabilities, threshold, at_least_one=False)
    per_class = [round(float(value), 4) for value in metrics.per_class_f1(targets, best)]
    return _headline(probabilities, targets, train_targets, threshold) | {"per_class_f1": per_class}


def evaluate_validation(probabilities, data, *, stage_dir) -> dict:
    """``evaluate`` on the validation split of ``data`` (a ``training_data.TrainingData``), keeping the
    predictions (predictions.npz) for the stage comparisons."""
    rows = data.validation_indices
    scores = evaluate(probabilities, data.targets[rows], data.targets[data.train_indices])
    stage_files.write_predictions(
        stage_dir,
        ids=data.table["Id"].to_numpy()[rows],
        targets=data.targets[rows],
        probabilities=probabilities,
        threshold=scores["best_global_threshold"],
    )
    return scores | data.external_counts()


def evaluate_out_of_fold(report: dict, *, stage_dir, ids, targets, oof, test_f1) -> dict:
    """04's scores from its threshold ``report`` (``metrics.threshold_report``): the out-of-fold macro F1 at 0.5 and
    at the best global threshold with its interval, at the per-class thresholds with its interval, per-class F1
    there, the test F1; and the out-of-fold predictions (predictions.npz)."""
    chosen = metrics.apply_thresholds(oof, report["per_class_thresholds"], at_least_one=True)
    stage_files.write_predictions(
        stage_dir, ids=ids, targets=targets, probabilities=oof, threshold=report["best_global_threshold"]
    )
    return _headline(oof, targets, targets, report["best_global_threshold"]) | {
        "f1_at_per_class": report["f1_at_per_class"],
        "f1_at_per_class_ci95": metrics.f1_interval(targets, chosen),
        "test_f1": test_f1,
        "per_class_f1": [round(float(value), 4) for value in metrics.per_class_f1(targets, chosen)],
    }


def score_if_labelled(data_dir, submission: pd.DataFrame) -> float | None:
    """The submission's macro F1 against test_labels.csv, as the leaderboard scores it; None without labels."""
    test_labels = dataset.read_test_labels(data_dir)
    if test_labels is None:
        print("no test_labels.csv: the leaderboard scores this submission")
        return None
    score = predict.score_submission(submission, test_labels)
    print(f"test macro F1 of {stages.SUBMISSION_FILE}: {score:.4f}")
    return score

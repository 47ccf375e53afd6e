"""A stage's scores: macro F1 at 0.5 and at the best single threshold with its 95 % interval, the prior; 04's
out-of-fold and test scores. What the images are comes from the stage record (``stages.Stage.scored_on``)."""

from __future__ import annotations

import pandas as pd

from hpa_utils import dataset, stages
from hpa_utils.dataset import labels
from hpa_utils.results import metrics, predict
from hpa_utils.stages import stage_files


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


def evaluate_out_of_fold(report: dict, *, stage_dir, ids, targets, oof, test_scores: dict) -> dict:
    """04's scores from its threshold ``report`` (``metrics.threshold_report``): the out-of-fold macro F1 at 0.5 and
    at the best global threshold with its interval, at the per-class thresholds with its interval, per-class F1
    there, the test scores (``score_test_images``); and the out-of-fold predictions (predictions.npz)."""
    chosen = metrics.apply_thresholds(oof, report["per_class_thresholds"], at_least_one=True)
    stage_files.write_predictions(
        stage_dir, ids=ids, targets=targets, probabilities=oof, threshold=report["best_global_threshold"]
    )
    return _headline(oof, targets, targets, report["best_global_threshold"]) | {
        "f1_at_per_class": report["f1_at_per_class"],
        "f1_at_per_class_ci95": metrics.f1_interval(targets, chosen),
        **test_scores,
        "per_class_f1": [round(float(value), 4) for value in metrics.per_class_f1(targets, chosen)],
    }


def score_test_images(data_dir, submission: pd.DataFrame, test_prediction, report: dict) -> dict:
    """The test images scored against test_labels.csv at the out-of-fold thresholds: "test_f1", the submission (per
    class, at least one label per image) as the leaderboard scores it, and "test_f1_at_best_global" (one threshold,
    as the out-of-fold "f1_at_best_global"); "test_images". None for each without labels (Kaggle's test set)."""
    test_labels = dataset.read_test_labels(data_dir)
    if test_labels is None:
        print("no test_labels.csv: the leaderboard scores this submission")
        return {"test_f1": None, "test_f1_at_best_global": None, "test_images": None}
    row_of = {image_id: row for row, image_id in enumerate(submission["Id"].astype(str))}
    rows = [row_of[image_id] for image_id in test_labels["Id"].astype(str) if image_id in row_of]
    at_global = metrics.apply_thresholds(test_prediction[rows], report["best_global_threshold"], at_least_one=False)
    return {
        "test_f1": predict.score_submission(submission, test_labels),
        "test_f1_at_best_global": metrics.macro_f1(labels.to_multi_hot(test_labels["labels"]), at_global),
        "test_images": len(test_labels),
    }


def out_of_fold_and_test(scores: dict) -> str:
    """04's scores side by side: out of fold and on the test images, at the global and the per-class thresholds. The
    out-of-fold thresholds were tuned on the out-of-fold images, so there they flatter; the test images say by how
    much."""
    header = f"{'macro F1':<34}{'global threshold ' + format(scores['best_global_threshold'], '.2f'):>24}"
    lines = [header + f"{'per-class thresholds':>24}"]
    rows = [("out of fold", "images_scored", "f1_at_best_global", "f1_at_per_class")]
    rows.append(("test", "test_images", "test_f1_at_best_global", "test_f1"))
    for name, images, at_global, per_class in rows:
        if scores.get(images) is None:
            lines.append(f"{name + ' (no labels)':<34}{'':>24}{'':>24}")
            continue
        where = f"{name} ({scores[images]} images)"
        lines.append(f"{where:<34}{scores[at_global]:>24.3f}{scores[per_class]:>24.3f}")
    return "\n".join(lines)

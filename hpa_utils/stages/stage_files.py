"""A stage's files: metrics.json (written last: the stage is finished), its predictions, arrays and thresholds.
Every file name is ``stages``'; the model's files are ``stage_model``'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpa_utils import errors, stages
from hpa_utils.dataset import labels
from hpa_utils.system import atomic_files


def write_metrics(stage_path, metrics: dict) -> Path:
    """Write stage_path/metrics.json atomically; the runner treats a stage with it as finished."""
    return atomic_files.write_json(Path(stage_path) / stages.METRICS_FILE, metrics)


def read_metrics(stage_path) -> dict:
    return atomic_files.read_json(Path(stage_path) / stages.METRICS_FILE)


def headline(metrics: dict) -> tuple[float, list] | None:
    """A training stage's headline score and its 95 % interval from its metrics.json, or None (none there)."""
    value = metrics.get(stages.HEADLINE)
    if not isinstance(value, (int, float)):
        return None
    return float(value), metrics.get(stages.HEADLINE + "_ci95") or [float("nan"), float("nan")]


def write_predictions(stage_path, *, ids, targets, probabilities, threshold: float) -> Path:
    """stage_path/predictions.npz: the images a stage was scored on (Ids, multi-hot targets, probabilities) and the
    threshold its headline score used. The comparison table scores two stages on the same bootstrap draws of these
    images (a paired bootstrap)."""
    ids = np.asarray(ids, dtype=str)
    if not len(ids) == len(targets) == len(probabilities):
        raise errors.InputError(f"{len(ids)} Ids, {len(targets)} target rows, {len(probabilities)} prediction rows")
    target = Path(stage_path) / stages.PREDICTIONS_FILE
    with atomic_files.atomic_write(target) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(
                handle,
                ids=ids,
                targets=np.asarray(targets, dtype=np.uint8),
                probabilities=np.asarray(probabilities, dtype=np.float32),
                threshold=np.float64(threshold),
            )
    return target


def read_predictions(stage_path) -> dict | None:
    """What write_predictions wrote, as a dict of arrays (threshold a float); None if absent."""
    path = Path(stage_path) / stages.PREDICTIONS_FILE
    if not path.is_file():
        return None
    with np.load(path) as saved:
        result = {name: saved[name] for name in ("ids", "targets", "probabilities")}
        result["threshold"] = float(saved["threshold"])
    return result


def per_class_by_stage(output_dir: str = "", upstream_dir: str = "") -> dict:
    """{stage: per-class F1} for every finished training stage (for plots.per_class_f1)."""
    result = {}
    for stage in stages.TRAINING_STAGES:
        path = stages.optional_stage(stage, output_dir, upstream_dir)
        metrics = read_metrics(path) if path is not None else {}
        if len(metrics.get("per_class_f1") or []) == labels.NUM_CLASSES:
            result[stage] = metrics["per_class_f1"]
    return result


def save_array(path, array) -> Path:
    """np.save, atomically."""
    with atomic_files.atomic_write(path) as temporary:
        np.save(temporary, array)
    return Path(path)


def save_thresholds(stage_dir, report: dict) -> Path:
    """thresholds.json: the global and the 28 per-class thresholds, by class number and name."""
    return atomic_files.write_json(
        Path(stage_dir) / stages.THRESHOLDS_FILE,
        {
            "global": report["best_global_threshold"],
            "per_class": report["per_class_thresholds"],
            "classes": {
                f"{index} {name}": threshold
                for index, (name, threshold) in enumerate(zip(labels.CLASS_NAMES, report["per_class_thresholds"]))
            },
        },
    )

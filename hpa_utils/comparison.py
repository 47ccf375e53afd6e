"""The stage comparison: each finished stage's scores, the images they are on, their 95 % intervals, and the
paired-bootstrap difference to the stage before (same images, same draws)."""

from __future__ import annotations

import pandas as pd

from hpa_utils import metrics, stages


def _difference_to(before: dict | None, after: dict | None) -> dict | None:
    """The paired bootstrap difference of ``after`` minus ``before`` (each a stage's predictions), or None when
    they are not on the same images (in the same order)."""
    if before is None or after is None or list(before["ids"]) != list(after["ids"]):
        return None
    return metrics.paired_difference(
        after["targets"],
        metrics.apply_thresholds(after["probabilities"], after["threshold"], at_least_one=False),
        metrics.apply_thresholds(before["probabilities"], before["threshold"], at_least_one=False),
    )


def rows(output_dir: str = "", upstream_dir: str = "") -> list[dict]:
    """One dict per finished training stage: metrics.json's scores, its image set, and "difference" (to the
    finished stage before it, None when there is none or it was scored on other images)."""
    result, previous = [], None
    for stage in stages.STAGES[1:]:
        path = stages.optional_stage(stage, output_dir, upstream_dir)
        if path is None:
            continue
        scores = stages.read_metrics(path)
        predictions = stages.read_predictions(path)
        image_set = predictions["image_set"] if predictions else "validation"
        row = {"stage": stage, "image_set": image_set, "images": scores.get("validation_images"), **scores}
        if previous is not None:
            row["difference"] = _difference_to(previous["predictions"], predictions)
            row["before"] = previous["stage"]
            row["before_image_set"] = previous["image_set"]
        result.append(row)
        previous = {"stage": stage, "predictions": predictions, "image_set": image_set}
    return result


def _number(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _interval(values, signed: bool = False) -> str:
    if not values:
        return ""
    sign = "+" if signed else ""
    return f"[{values[0]:{sign}.3f}, {values[1]:{sign}.3f}]"


def _image_set(row: dict) -> str:
    count = row.get("images")
    return f"{row['image_set']} ({count})" if count else row["image_set"]


def _difference(row: dict) -> str:
    """The "vs stage before" cell: the paired difference and its interval, or why there is none."""
    if "before" not in row:
        return ""
    if row.get("difference") is None:
        if row["image_set"] != row["before_image_set"]:
            return f"not paired: {row['image_set']} images"
        return "no predictions.npz to pair"
    difference = row["difference"]
    return f"{difference['difference']:+.3f} {_interval(difference['ci95'], signed=True)}"


def _stopped(row: dict) -> str:
    """The "stopped early" cell: where a stage stopped for its time limit ("stopped after epoch 1 of 3")."""
    reasons = (row.get("stopped_early") or "").split("; ")
    return "; ".join(reason[reason.index("stopped after") :] for reason in reasons if "stopped after" in reason)


COLUMNS = {  # heading: how a row fills it
    "stage": lambda row: row["stage"],
    "scored on (images)": _image_set,
    "macro F1 @best threshold": lambda row: _number(row.get("val_f1_at_best_global")),
    "95% interval": lambda row: _interval(row.get("val_f1_at_best_global_ci95")),
    "vs stage before [95%]": _difference,
    "macro F1 @0.5": lambda row: _number(row.get("val_f1_at_0.5")),
    "prior": lambda row: _number(row.get("prior_baseline_f1")),
    "OOF per-class thresholds": lambda row: _number(row.get("oof_f1_at_per_class")),
    "test F1 (test images)": lambda row: _number(row.get("test_f1")),
    "image size": lambda row: str(row.get("image_size", "")),
    "epochs": lambda row: str(row.get("epochs", "")),
    "seconds": lambda row: str(row.get("seconds", "")),
    "stopped early (time limit)": _stopped,
}


def table(output_dir: str = "", upstream_dir: str = "") -> pd.DataFrame:
    """The comparison as a table of text cells (what the notebooks display and the report shows).

    Each score's image set is in "scored on": 01-03 score the same validation images, 04 its out-of-fold
    predictions of every training image (and, where the test set has labels, the test images).
    """
    found = rows(output_dir, upstream_dir)
    frame = pd.DataFrame([{heading: cell(row) for heading, cell in COLUMNS.items()} for row in found])
    if frame.empty:
        return frame
    return frame.loc[:, (frame != "").any(axis=0)]  # drop columns no stage fills


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (text cells, first column left-aligned)."""
    if frame.empty:
        return "(no training stage has finished)"
    heading = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join([":---"] + ["---:"] * (len(frame.columns) - 1)) + "|"
    body = ["| " + " | ".join(str(cell) for cell in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([heading, rule, *body])

"""The stage comparison: each finished stage's scores, the images they are on, their 95 % intervals, and the
paired-bootstrap difference to the stage before (same images, same draws)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpa_utils import errors, stages
from hpa_utils.results import metrics
from hpa_utils.stages import stage_files


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
    for stage in stages.TRAINING_STAGES:
        path = stages.optional_stage(stage, output_dir, upstream_dir)
        if path is None:
            continue
        scores = stage_files.read_metrics(path)
        predictions = stage_files.read_predictions(path)
        image_set = stages.record(stage).scored_on
        row = {"stage": stage, "image_set": image_set, "images": scores.get("images_scored"), **scores}
        if previous is not None:
            row["difference"] = _difference_to(previous["predictions"], predictions)
            row["before"] = previous["stage"]
            row["before_image_set"] = previous["image_set"]
        result.append(row)
        previous = {"stage": stage, "predictions": predictions, "image_set": image_set}
    return result


def headline(scores: dict, stage: str) -> str:
    """A stage's scores (its metrics.json) in one line: macro F1 at the best single threshold with its interval, the
    prior, and (04) the out-of-fold and test scores."""
    parts, score = [], stage_files.headline(scores)
    if score is not None:
        (value, (low, high)), where = score, stages.record(stage).scored_on
        parts.append(f"{where} F1 {value:.3f} [{low:.3f}, {high:.3f}] at best threshold")
    if isinstance(scores.get("f1_at_per_class"), (int, float)):
        parts.append(f"per-class thresholds {scores['f1_at_per_class']:.3f}")
    if isinstance(scores.get("test_f1"), (int, float)):
        parts.append(f"test {scores['test_f1']:.3f}")
    if isinstance(scores.get("prior_baseline_f1"), (int, float)):
        parts.append(f"prior {scores['prior_baseline_f1']:.3f}")
    if scores.get("stopped_early"):
        parts.append(f"STOPPED EARLY: {scores['stopped_early']}")
    return ", ".join(parts)


def difference_text(difference: dict, what: str) -> str:
    """One line for a paired difference (``metrics.paired_difference``): the value, its 95 % interval, and what
    the interval lets this run say (a gain, a loss, or no difference it can show)."""
    low, high = difference["ci95"]
    if low > 0:
        verdict = "a gain: the interval is above 0"
    elif high < 0:
        verdict = "a loss: the interval is below 0"
    else:
        verdict = "the interval includes 0: no difference this run can show"
    return f"{what}: {difference['difference']:+.3f} [{low:+.3f}, {high:+.3f}] macro F1 ({verdict})"


def threshold_gain(truth, probabilities, report: dict) -> str:
    """What the per-class thresholds (as the submission applies them: at least one label per image) are worth over
    the best global threshold on the same images (``metrics.threshold_report``'s), as ``difference_text``."""
    per_class = metrics.apply_thresholds(probabilities, report["per_class_thresholds"], at_least_one=True)
    at_global = metrics.apply_thresholds(probabilities, report["best_global_threshold"], at_least_one=False)
    difference = metrics.paired_difference(truth, per_class, at_global)
    return difference_text(difference, f"per-class thresholds - one global threshold on the same {len(truth)} images")


def versus_before(stage: str, output_dir: str = "", upstream_dir: str = "") -> str:
    """What this run measured for ``stage``'s idea: its headline minus the finished stage before it, paired on the
    same images (``difference_text``), or why there is no such difference."""
    found = {row["stage"]: row for row in rows(output_dir, upstream_dir)}
    row = found.get(stages.check_stage(stage))
    if row is None:
        return f"{stage} has not finished: nothing to compare"
    if "before" not in row:
        return f"{stage} is the first finished training stage: nothing to compare it with"
    if row.get("difference") is None:
        return f"{stage} vs {row['before']}: {_difference(row)}, so no paired difference"
    images = f"{row['images']} {row['image_set']}" if row.get("images") else row["image_set"]
    return difference_text(row["difference"], f"{stage} - {row['before']} on the same {images} images")


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
        return f"no {stages.PREDICTIONS_FILE} to pair"
    difference = row["difference"]
    return f"{difference['difference']:+.3f} {_interval(difference['ci95'], signed=True)}"


def _stopped(row: dict) -> str:
    """The "stopped early" cell: where a stage stopped for its time limit ("stopped after epoch 1 of 3")."""
    reasons = (row.get("stopped_early") or "").split("; ")
    return "; ".join(reason[reason.index("stopped after") :] for reason in reasons if "stopped after" in reason)


COLUMNS = {  # heading: how a row fills it
    "stage": lambda row: row["stage"],
    "scored on (images)": _image_set,
    "macro F1 @best threshold": lambda row: _number(row.get(stages.HEADLINE)),
    "95% interval": lambda row: _interval(row.get(stages.HEADLINE + "_ci95")),
    "vs stage before [95%]": _difference,
    "macro F1 @0.5": lambda row: _number(row.get("f1_at_0.5")),
    "prior": lambda row: _number(row.get("prior_baseline_f1")),
    "OOF per-class thresholds": lambda row: _number(row.get("f1_at_per_class")),
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


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils summary RUN_DIR [--markdown]`: a run folder's stage table."""
    run_dir, as_markdown = arguments.run_dir, arguments.markdown
    if not Path(run_dir).is_dir():
        raise errors.MissingError(f"{run_dir}: no such run folder")
    frame = table(run_dir)
    if frame.empty:
        raise errors.InputError(f"{run_dir}: no training stage has finished there (no <stage>/{stages.METRICS_FILE})")
    if as_markdown:  # the scores only: seconds move with the machine's load, the scores do not
        print(markdown(frame.drop(columns=["seconds"], errors="ignore")))
    else:
        print(frame.to_string(index=False))
    return 0

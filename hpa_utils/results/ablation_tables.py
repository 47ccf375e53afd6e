"""An ablation's results: ablation.csv (one row per run) and ablation.md (per setting, and paired differences)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpa_utils import stages
from hpa_utils.results import comparison, metrics
from hpa_utils.stages import HEADLINE, stage_files
from hpa_utils.system import atomic_files

SCORES = (HEADLINE, "f1_at_0.5", "f1_at_per_class", "test_f1")  # the scores a row keeps, where the stage has them


def collect(out: Path, stage: str, runs: list) -> pd.DataFrame:
    """One row per finished run: the varied values, the seed, the stage's scores and interval, its seconds."""
    rows = []
    for setting in runs:
        stage_path = Path(out) / "ablation" / setting.folder / stage
        if not stages.is_finished(stage_path):
            continue
        scores = stage_files.read_metrics(stage_path)
        low, high = scores.get(f"{HEADLINE}_ci95") or (None, None)
        row = {**dict(setting.values), "SEED": setting.seed}
        row |= {name: scores.get(name) for name in SCORES}
        row |= {"ci95_low": low, "ci95_high": high, "threshold": scores.get("best_global_threshold")}
        row |= {"prior": scores.get("prior_baseline_f1"), "epochs": scores.get("epochs")}
        row |= {"seconds": scores.get("seconds"), "run": f"ablation/{setting.folder}"}
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def _predictions(out: Path, run: str, stage: str):
    """(Ids, targets, multi-hot at the run's own threshold) of one run, or None without predictions.npz."""
    saved = stage_files.read_predictions(Path(out) / run / stage)
    if saved is None:
        return None
    predicted = metrics.apply_thresholds(saved["probabilities"], saved["threshold"], at_least_one=False)
    return list(saved["ids"]), saved["targets"], predicted


def image_interval(out: Path, stage: str, runs_after: list[str], runs_before: list[str]) -> list[float] | None:
    """95 % paired-bootstrap interval over the images of mean(after) - mean(before) (the seeds' mean scores),
    every run scored on the same draws; None when the runs are not on the same images."""
    loaded = [_predictions(out, run, stage) for run in runs_after + runs_before]
    if any(item is None for item in loaded) or any(item[0] != loaded[0][0] for item in loaded):
        return None
    scores = metrics.bootstrap_macro_f1(loaded[0][1], [item[2] for item in loaded])
    differences = scores[: len(runs_after)].mean(axis=0) - scores[len(runs_after) :].mean(axis=0)
    return metrics.interval(differences)


def setting_labels(table: pd.DataFrame, names: list[str], reference: dict) -> pd.Series:
    """Each run's setting in words: the values that differ from the reference, or "reference (...)"."""

    def label(row) -> str:
        changed = [f"{name}={row[name]}" for name in names if str(row[name]) != str(reference[name])]
        return ", ".join(changed) or "reference (" + ", ".join(f"{name}={reference[name]}" for name in names) + ")"

    return table.apply(label, axis=1)


def per_setting(table: pd.DataFrame, names: list[str], reference: dict) -> pd.DataFrame:
    """Mean, spread and range of the headline score for each setting (over its seeds)."""
    grouped = table.assign(setting=setting_labels(table, names, reference)).groupby("setting", sort=False)
    summary = grouped[HEADLINE].agg(runs="count", mean="mean", sd="std", low="min", high="max").reset_index()
    summary["mean @0.5"] = grouped["f1_at_0.5"].mean().to_numpy()
    summary["mean seconds"] = grouped["seconds"].mean().round().astype(int).astype(str).to_numpy()
    return summary


def paired(out: Path, stage: str, table: pd.DataFrame, names: list[str], reference: dict) -> pd.DataFrame:
    """For each varied name and each value other than the reference: the score difference to the reference
    value in runs that agree on everything else (the other values, the seed)."""
    rows = []
    table = table.astype({name: str for name in names})  # as ablation.csv reads back: compare values as text
    for name in names:
        others = [other for other in names if other != name] + ["SEED"]
        base = table[table[name] == str(reference[name])]
        for value in table[name].unique():
            if value == str(reference[name]):
                continue
            joined = table[table[name] == value].merge(base, on=others, suffixes=("", "_reference"))
            if joined.empty:
                continue
            differences = joined[HEADLINE] - joined[f"{HEADLINE}_reference"]
            rows.append(
                {
                    "change": f"{name}: {reference[name]} -> {value}",
                    "pairs": len(joined),
                    "mean difference": differences.mean(),
                    "sd over seeds": differences.std(),
                    "better in": f"{int((differences > 0).sum())} of {len(joined)}",
                    "95% over images": image_interval(out, stage, list(joined["run"]), list(joined["run_reference"])),
                }
            )
    return pd.DataFrame(rows)


def _format(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells: scores to 3 decimals (signed for differences), intervals as [low, high]."""

    def cell(column, value):
        if isinstance(value, list):
            return f"[{value[0]:+.3f}, {value[1]:+.3f}]"
        if value is None or isinstance(value, float) and np.isnan(value):
            return ""
        if isinstance(value, float):
            return f"{value:+.3f}" if column == "mean difference" else f"{value:.3f}"
        return str(value)

    return pd.DataFrame({column: [cell(column, value) for value in frame[column]] for column in frame.columns})


def summaries(out, stage: str, table: pd.DataFrame, names: list[str], reference: dict):
    """(per setting, paired differences), formatted as text cells; empty frames before any run has finished."""
    if table.empty:
        return pd.DataFrame(), pd.DataFrame()
    differences = paired(out, stage, table, names, reference)
    return _format(per_setting(table, names, reference)), _format(differences) if len(differences) else differences


def image_set(out, stage: str, table: pd.DataFrame) -> str:
    """What the runs were scored on, e.g. "validation images (200)"; "" before any run has finished."""
    saved = stage_files.read_predictions(Path(out) / table["run"].iloc[0] / stage) if len(table) else None
    return f"{stages.record(stage).scored_on} images ({len(saved['ids'])})" if saved else ""


INTERVAL_NOTE = (
    "`95% over images`: a paired bootstrap (1,000 draws of the images, every run scored on the same draws) of "
    "the difference between the seeds' mean scores; `sd over seeds`: how much one seed's difference varies."
)


def markdown(out: Path, stage: str, table: pd.DataFrame, names: list[str], reference: dict) -> str:
    """ablation.md: what was run, the scores per setting, and the paired differences to the reference."""
    record = atomic_files.read_json(Path(out) / "ablation.json") if (Path(out) / "ablation.json").is_file() else {}
    by_setting, differences = summaries(out, stage, table, names, reference)
    lines = [
        f"# Ablation of {stage}",
        "",
        f"Preset {record.get('preset', '?')}, {len(table)} finished runs. Score: macro F1 at the best single "
        f"threshold on the same {image_set(out, stage, table) or 'images'}, each run its own threshold.",
        "",
        "## Per setting (over seeds)",
        "",
        comparison.markdown(by_setting) if len(by_setting) else "(no run has finished)",
        "",
        "## Paired differences to the reference (same seed, everything else equal)",
        "",
        INTERVAL_NOTE,
        "",
        comparison.markdown(differences) if len(differences) else "(no pair has finished yet)",
    ]
    return "\n".join(lines) + "\n"


def write(out: Path, stage: str, runs: list, reference: dict) -> pd.DataFrame:
    """Write ablation.csv and ablation.md from the runs finished so far; return the table."""
    out = Path(out)
    names = [name for name, _ in runs[0].values]
    table = collect(out, stage, runs)
    with atomic_files.atomic_write(out / "ablation.csv") as temporary:
        table.to_csv(temporary, index=False)
    with atomic_files.atomic_write(out / "ablation.md") as temporary:
        temporary.write_text(markdown(out, stage, table, names, reference), encoding="utf-8")
    return table

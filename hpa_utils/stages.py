"""Stage folders of a run: where a notebook writes, how it finds an upstream stage, its metrics.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpa_utils import environment, files, labels

STAGES = ("00_eda", "01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold")


class StageMissingError(FileNotFoundError):
    """An upstream stage has not run (or not finished) yet."""


def output_root(output_dir: str = "") -> Path:
    """The run folder: ``output_dir``, else /kaggle/working on Kaggle, else runs/interactive."""
    if output_dir:
        return Path(output_dir).expanduser().resolve()
    if environment.is_kaggle():
        return environment.kaggle_working()
    return environment.REPO_ROOT / "runs" / "interactive"


def check_stage(stage: str) -> str:
    """``stage`` when it is one of STAGES; ValueError listing them otherwise."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return stage


def kernel_slug(stage: str) -> str:
    """The stage's Kaggle kernel slug: "01_baseline" -> "hpa-01-baseline"."""
    return "hpa-" + check_stage(stage).replace("_", "-")


def stage_dir(output_dir: str, stage: str) -> Path:
    """Create and return OUTPUT_DIR/<stage>/, the only place a notebook writes."""
    path = output_root(output_dir) / check_stage(stage)
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_stage(stage: str, output_dir: str = "", upstream_dir: str = "", required: str = "metrics.json") -> Path:
    """The folder of a finished ``stage``: in UPSTREAM_DIR, in the run, or (on Kaggle) in a mounted kernel output.

    On Kaggle an upstream kernel's output is found by what it holds (``<stage>/<required>``) in any
    mount layout. Raises StageMissingError naming the notebook to run first, or the kernel to attach.
    """
    candidates = [Path(upstream_dir).expanduser() / stage] if upstream_dir else []
    candidates.append(output_root(output_dir) / stage)
    for candidate in candidates:
        if (candidate / required).is_file():
            return candidate.resolve()
    if environment.is_kaggle():
        found = environment.find_stage_outputs(stage, required)
        if found:
            return found[0].resolve()
        raise StageMissingError(
            f"stage {stage} not found: no {stage}/{required} in {', '.join(map(str, candidates))} or under "
            f"{environment.kaggle_input()}. Add the output of the kernel {kernel_slug(stage)} to this notebook "
            f"(Add Input > Your Work > Notebooks; kernel-metadata.json: kernel_sources), once it has finished."
            f"\n{environment.mounted()}"
        )
    looked = ", ".join(str(candidate / required) for candidate in candidates)
    raise StageMissingError(
        f"stage {stage} has not finished: no {looked}. Run notebooks/{stage}.ipynb first "
        f"(or `python -m hpa_utils run --only {stage}`), or point UPSTREAM_DIR at a run that has it."
    )


def optional_stage(stage: str, output_dir: str = "", upstream_dir: str = "") -> Path | None:
    """The folder of a finished ``stage``, or None when it has not run (for comparisons, not for inputs)."""
    try:
        return find_stage(stage, output_dir, upstream_dir)
    except StageMissingError:
        return None


def write_metrics(stage_path, metrics: dict) -> Path:
    """Write stage_path/metrics.json atomically; the runner treats a stage with it as finished."""
    return files.write_json(Path(stage_path) / "metrics.json", metrics)


def read_metrics(stage_path) -> dict:
    return files.read_json(Path(stage_path) / "metrics.json")


def per_class_by_stage(output_dir: str = "", upstream_dir: str = "") -> dict:
    """{stage: per-class validation F1} for every finished training stage (for plots.per_class_f1)."""
    result = {}
    for stage in STAGES[1:]:
        path = optional_stage(stage, output_dir, upstream_dir)
        metrics = read_metrics(path) if path is not None else {}
        if len(metrics.get("per_class_f1") or []) == labels.NUM_CLASSES:
            result[stage] = metrics["per_class_f1"]
    return result


def comparison_table(output_dir: str = "", upstream_dir: str = "") -> pd.DataFrame:
    """One row per finished training stage: its validation macro F1 (and OOF/test scores where it has them)."""
    rows = []
    for stage in STAGES[1:]:
        try:
            metrics = read_metrics(find_stage(stage, output_dir, upstream_dir))
        except StageMissingError:
            continue
        rows.append(
            {
                "stage": stage,
                "validation macro F1 @0.5": metrics.get("val_f1_at_0.5"),
                "validation macro F1 @best threshold": metrics.get("val_f1_at_best_global"),
                "OOF macro F1 (per-class thresholds)": metrics.get("oof_f1_at_per_class"),
                "test macro F1": metrics.get("test_f1"),
                "prior baseline F1": metrics.get("prior_baseline_f1"),
                "image size": metrics.get("image_size"),
                "epochs": metrics.get("epochs"),
                "seconds": metrics.get("seconds"),
            }
        )
    table = pd.DataFrame(rows).dropna(axis=1, how="all")
    for column in ("image size", "epochs", "seconds"):  # whole numbers, even where a stage lacks one (04: epochs)
        if column in table:
            table[column] = table[column].astype("Int64")
    return table

"""What a stage is (its record), the names of its files, where a notebook writes, and how it finds an upstream stage.

The one place that names a stage's files: every other module and the notebooks use the constants below
(``stage_files`` writes and reads them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hpa_utils import errors
from hpa_utils.system import environment

METRICS_FILE = "metrics.json"  # written last: a stage folder with it is finished
PREDICTIONS_FILE = "predictions.npz"  # the images the headline score is on, for paired comparisons
HISTORY_FILE = "history.csv"  # one row per epoch, both phases
WEIGHTS_FILE = "model.h5"  # legacy HDF5: the next stage loads it by layer name
CONFIG_FILE = "config.json"  # the stage's parameters and how its model was built: the next stage rebuilds it
SPLIT_FILE = "validation_split.csv"  # 01's split, reused by 02 and 03 so that their scores compare
FOLDS_FILE = "folds.csv"  # 04: the fold of every training image
OOF_FILE = "oof.npy"  # 04 (and each fold_<k>/): out-of-fold probabilities
TEST_PREDICTIONS_FILE = "test_pred.npy"  # 04 (and each fold_<k>/): test probabilities
THRESHOLDS_FILE = "thresholds.json"  # 04: the global and per-class thresholds
SUBMISSION_FILE = "submission.csv"  # 04
# The embedded dataset a stage reads when DATA_DIR is "": the notebooks' own defaults (a test keeps them equal)
SYNTHETIC_DEFAULTS = {"SYNTHETIC_TRAIN": 1000, "SYNTHETIC_TEST": 200, "SYNTHETIC_SIZE": 256, "SYNTHETIC_SEED": 0}
HEADLINE = "f1_at_best_global"  # a training stage's headline score in metrics.json (+ "_ci95": its interval)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage: its folder (and notebook) name, the stages whose outputs it reads (inputs, and the scores it
    compares itself with), and the images its headline score is on ("" for 00_eda, which trains nothing)."""

    name: str
    upstream: tuple[str, ...] = ()
    scored_on: str = ""

    @property
    def trains(self) -> bool:
        return bool(self.scored_on)


RECORDS = (
    Stage("00_eda"),
    Stage("01_baseline", scored_on="validation"),
    Stage("02_warmup_finetune", ("01_baseline",), scored_on="validation"),
    Stage("03_upscale", ("01_baseline", "02_warmup_finetune"), scored_on="validation"),
    Stage("04_kfold", ("01_baseline", "02_warmup_finetune", "03_upscale"), scored_on="out of fold"),
)
STAGES = tuple(record.name for record in RECORDS)
TRAINING_STAGES = tuple(record.name for record in RECORDS if record.trains)


class StageMissingError(errors.MissingError):
    """An upstream stage has not run (or not finished) yet."""


class RunError(errors.StoppedError):
    """A run could not go on; the message says where to look."""


class StageStopped(RunError):
    """A stage ended without finishing: its notebook failed in a cell, the disk filled, or its kernel died."""


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
        raise errors.InputError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return stage


def record(stage: str) -> Stage:
    """The record of ``stage`` (ValueError for an unknown one)."""
    return RECORDS[STAGES.index(check_stage(stage))]


def kernel_slug(stage: str, fold: int | None = None) -> str:
    """The stage's Kaggle kernel slug: "01_baseline" -> "hpa-01-baseline"; a fold kernel of kaggle-export
    --fold-kernels: "hpa-04-kfold-fold-2"."""
    return "hpa-" + check_stage(stage).replace("_", "-") + ("" if fold is None else f"-fold-{fold}")


def is_finished(stage_path) -> bool:
    """Whether a stage folder (or a fold's) holds its metrics.json, written last."""
    return (Path(stage_path) / METRICS_FILE).is_file()


def stage_dir(output_dir: str, stage: str) -> Path:
    """Create and return OUTPUT_DIR/<stage>/, the only place a notebook writes."""
    path = output_root(output_dir) / check_stage(stage)
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_stage(stage: str, output_dir: str = "", upstream_dir: str = "", required: str = METRICS_FILE) -> Path:
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

"""What the ``full`` preset's stages write to /kaggle/working, measured by writing it: ``python -m benchmarks.outputs``.

Kaggle keeps at most 20 GB of a kernel's output. For each training stage of the preset this builds the stage's
model as the notebook does (backbone, channels, image size, the upscale adapter; weights none: the same shapes),
writes its files as the stage writes them (``model.h5``, the best checkpoint ``best.weights.h5``, predictions at
the competition's image counts) into a temporary folder, and adds up their sizes. 04 writes one fold's files
and counts them N_FOLDS times. Ends with the target line: the largest kernel's output well under 20 GB.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import DEFAULT_DATA_ROOT, target_line
from hpa_utils import models, stages
from hpa_utils.dataset import labels
from hpa_utils.stages import parameters, stage_files

TRAIN_IMAGES, TEST_IMAGES = 31_072, 11_702  # the competition's train.csv and sample_submission.csv rows
KAGGLE_OUTPUT_GB = 20.0
GOAL_GB = KAGGLE_OUTPUT_GB / 4  # "well under": a quarter of what Kaggle keeps


def _stage_settings(preset: dict, stage: str) -> dict:
    return preset["parameters"] | (preset["stages"].get(stage) or {})


def _write_model_files(folder: Path, settings: dict, source_size: int | None) -> None:
    """model.h5 (legacy, loaded by name by the next stage) and best.weights.h5 (the checkpoint), as a stage does."""
    model = models.build_model(
        settings["BACKBONE"],
        settings["IMAGE_SIZE"],
        settings.get("CHANNELS", "rgby"),
        "none",
        adapter=models.upscale_adapter(settings["BACKBONE"], source_size, settings["IMAGE_SIZE"])
        if source_size
        else None,
    )
    models.save_weights(model, folder / stages.WEIGHTS_FILE)
    model.save_weights(folder / "best.weights.h5")


def _write_predictions(folder: Path, rows: int) -> None:
    probabilities = np.random.default_rng(0).random((rows, labels.NUM_CLASSES)).astype(np.float32)
    ids = [f"{index:08x}-0000-0000-0000-000000000000" for index in range(rows)]
    stage_files.write_predictions(
        folder, ids=ids, targets=probabilities > 0.5, probabilities=probabilities, threshold=0.3
    )


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(preset_name: str, train_images: int, test_images: int, work: Path) -> list[tuple[str, int, str]]:
    """(stage, bytes written, what) for each training stage of ``preset_name``."""
    preset = parameters.load_preset(preset_name)
    validation = round(train_images * 0.2)
    rows, sizes = [], {}
    for stage in stages.STAGES[1:4]:
        settings = _stage_settings(preset, stage)
        previous = stages.STAGES[stages.STAGES.index(stage) - 1]
        source = sizes.get(previous) if stage == "03_upscale" else None
        if stage == "03_upscale":  # backbone and channels come from 02
            settings = _stage_settings(preset, previous) | _stage_settings(preset, stage)
        folder = work / stage
        folder.mkdir()
        _write_model_files(folder, settings, source)
        _write_predictions(folder, validation)
        sizes[stage] = settings["IMAGE_SIZE"]
        rows.append((stage, _folder_bytes(folder), f"{settings['BACKBONE']} {settings['IMAGE_SIZE']} px"))
    settings = _stage_settings(preset, "02_warmup_finetune") | _stage_settings(preset, "04_kfold")
    n_folds = settings.get("N_FOLDS", 5)
    fold = work / "04_kfold" / "fold_0"
    fold.mkdir(parents=True)
    _write_model_files(fold, settings, sizes["02_warmup_finetune"])
    stage_files.save_array(fold / "oof.npy", np.zeros((train_images // n_folds, labels.NUM_CLASSES), np.float32))
    stage_files.save_array(fold / "test_pred.npy", np.zeros((test_images, labels.NUM_CLASSES), np.float32))
    merged = work / "04_kfold" / "merged"
    merged.mkdir()
    _write_predictions(merged, train_images)
    stage_files.save_array(merged / "oof.npy", np.zeros((train_images, labels.NUM_CLASSES), np.float32))
    total = _folder_bytes(fold) * n_folds + _folder_bytes(merged) + test_images * 64  # submission.csv, ~64 B a row
    rows.append(("04_kfold", total, f"{n_folds} folds x one fold's files, the merged predictions"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.outputs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="full", help="whose stages (default full)")
    parser.add_argument("--quick", action="store_true", help="the smoke preset at tiny counts (for the test)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="where the files are written")
    arguments = parser.parse_args(argv)
    preset, counts = ("smoke", (64, 16)) if arguments.quick else (arguments.preset, (TRAIN_IMAGES, TEST_IMAGES))
    print(f"# what each stage writes to its kernel's output (python -m benchmarks.outputs), preset {preset}")
    arguments.data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="outputs-", dir=arguments.data_root) as work:
        rows = measure(preset, *counts, Path(work))
    for stage, size, what in rows:
        print(f"{stage:<20} {size / 1e9:8.3f} GB  {what}")
    largest = max(size for _, size, _ in rows) / 1e9
    print(target_line("largest kernel output", largest, " GB", GOAL_GB, at_least=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

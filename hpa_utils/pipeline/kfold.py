"""The k-fold stage's parts: the run's folds (its folds.csv, or the fold kernels'), the arrays the folds train on,
a fold's starting model and files, and the merge of every finished fold's predictions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hpa_utils import errors, models, stages
from hpa_utils.dataset import external, folds, labels
from hpa_utils.stages import stage_config, stage_files, stage_model
from hpa_utils.system import atomic_files, environment

FOLD_FILES = (stages.METRICS_FILE, stages.OOF_FILE, stages.TEST_PREDICTIONS_FILE, stages.HISTORY_FILE)  # merging reads


@dataclasses.dataclass
class FoldArrays:
    """What the folds train on: the training images and targets, the fold of each row (-1: EXTERNAL_DIR's rows, held
    out by no fold), and what metrics.json keeps of EXTERNAL_DIR."""

    images: np.ndarray
    targets: np.ndarray
    fold_of: np.ndarray
    external_counts: dict


def gather_fold_kernels(stage_dir, root=None) -> list[int]:
    """The merge kernel's inputs (kaggle-export --fold-kernels): every mounted fold kernel's output, found by
    what it holds (``04_kfold/folds.csv`` and ``fold_<k>/metrics.json``) in any mount layout, its predictions,
    metrics and history copied into stage_dir/fold_<k>/ and the folds.csv they share into stage_dir. Returns
    the folds found. Raises ValueError when two fold kernels split the images differently, InputNotFoundError
    when no fold kernel's output is mounted."""
    stage_dir, root = Path(stage_dir), root or environment.kaggle_input()
    outputs = [
        path for path in environment.find_stage_outputs(stage_dir.name, stages.FOLDS_FILE, root) if path != stage_dir
    ]
    if not outputs:
        raise environment.InputNotFoundError(
            f"no fold kernel's output ({stage_dir.name}/{stages.FOLDS_FILE}) under {root}: add the kernels "
            f"hpa-04-kfold-fold-<k> to this notebook (kernel-metadata.json: kernel_sources) once they have "
            f"finished.\n{environment.mounted(root)}"
        )
    reference = outputs[0] / stages.FOLDS_FILE
    for output in outputs[1:]:
        if (output / stages.FOLDS_FILE).read_bytes() != reference.read_bytes():
            raise errors.InputError(
                f"{output / stages.FOLDS_FILE} differs from {reference}: the fold kernels split the images "
                "differently; run them all with the same SEED, N_FOLDS and data"
            )
    atomic_files.copy_file(reference, stage_dir / stages.FOLDS_FILE)
    found = {}
    for output in outputs:
        for fold_dir in sorted(output.glob("fold_*")):
            fold = fold_dir.name.removeprefix("fold_")
            if fold.isdigit() and stages.is_finished(fold_dir) and int(fold) not in found:
                for name in FOLD_FILES:
                    if (fold_dir / name).is_file():
                        atomic_files.copy_file(fold_dir / name, stage_dir / fold_dir.name / name)
                found[int(fold)] = fold_dir
    print("fold kernels' outputs: " + ", ".join(f"fold {fold} from {path}" for fold, path in sorted(found.items())))
    return sorted(found)


def load_folds(stage_dir, ids, targets, *, n_folds: int, seed: int = 0, from_kernels: bool = False) -> np.ndarray:
    """The fold of each image: stage_dir/folds.csv when it exists (runs that add folds agree), else made now.
    ``from_kernels``: first gather the fold kernels' outputs and their folds.csv (``gather_fold_kernels``)."""
    if from_kernels:
        gather_fold_kernels(stage_dir)
    path = Path(stage_dir) / stages.FOLDS_FILE
    if path.is_file():
        fold_of = folds.read_folds(path, expected_ids=ids)["fold"].to_numpy()
        if fold_of.max() + 1 != n_folds:
            raise errors.InputError(
                f"{path} has {fold_of.max() + 1} folds but N_FOLDS = {n_folds}; "
                "use the same N_FOLDS, or a new OUTPUT_DIR"
            )
        return fold_of
    fold_of = folds.make_folds(np.asarray(targets, dtype=np.uint8), n_folds, seed)
    folds.write_folds(path, ids, fold_of)
    return fold_of


def folds_to_train(requested: list, n_folds: int, *, from_kernels: bool = False) -> list[int]:
    """FOLDS as given ([] means all), checked against N_FOLDS; none for the merge kernel (``from_kernels``)."""
    if from_kernels:
        return []
    chosen = list(requested) or list(range(n_folds))
    wrong = [fold for fold in chosen if not errors.is_integer(fold) or not 0 <= fold < n_folds]
    if wrong:
        raise errors.InputError(f"FOLDS {wrong}: each fold must be an integer 0..{n_folds - 1} (N_FOLDS = {n_folds})")
    return chosen


def with_external(external_dir, images, targets, fold_of, *, test_images, ids, image_size: int, channels: str):
    """The folds' training arrays (``FoldArrays``) with EXTERNAL_DIR's images appended as fold -1 (held out by no
    fold), minus near-duplicates of any competition image (every one is held out by some fold) or test image."""
    if not external_dir:
        return FoldArrays(images, targets, fold_of, {"external_images": 0, "external_dropped": 0})
    extra = external.load_external(
        external_dir, image_size=image_size, channels=channels, held_out=[images, test_images], competition_ids=ids
    )
    counts = {"external_images": extra.count, "external_dropped": extra.dropped}
    return FoldArrays(*external.with_external(images, targets, fold_of, extra, extra_group=-1), counts)


def batch_norm(setting: str, start_stage, weights: str) -> bool:
    """FREEZE_BATCH_NORM for the folds: "auto" keeps START_FROM's choice, or (no START_FROM) follows ``weights``."""
    upstream = stage_config.read_model(start_stage).freeze_batch_norm if start_stage else None
    return models.batch_norm_frozen(setting, weights, upstream=upstream)


def seen_in_training(start_stage, ids) -> np.ndarray:
    """Which training images (``ids``, train.csv's) the weights the folds start from trained on: with START_FROM,
    every image outside that stage's validation split (it, or the stage it started from, trained on them); none
    without START_FROM. Their out-of-fold predictions are not validation: ``rows_to_score`` leaves them out, and a
    loud line says so."""
    seen = np.zeros(len(ids), dtype=bool)
    if start_stage is None:
        return seen
    split = Path(start_stage) / stages.SPLIT_FILE
    if split.is_file():
        seen = ~folds.read_split(split, expected_ids=ids)["is_validation"].to_numpy(bool)
    else:  # no split kept: assume it trained on every image
        seen[:] = True
    if seen.all():
        raise errors.InputError(
            f"START_FROM {Path(start_stage).name} trained on every image the folds hold out: no out-of-fold image "
            'would be left to score or to tune the thresholds on. Use START_FROM = "" (each fold from WEIGHTS).'
        )
    print(
        f"WARNING: START_FROM {Path(start_stage).name} trained on {seen.sum()} of the {len(ids)} images the folds hold "
        f"out: their out-of-fold predictions would be scored by a model that saw them. The thresholds and the scores "
        f'use only the {len(ids) - seen.sum()} images it did not train on; START_FROM = "" gives every image.'
    )
    return seen


def start_model(start_stage, spec: models.ModelSpec, images, is_held_out, *, scope):
    """The model a fold starts from, built in ``scope()`` (``run.scope``): a finished stage's weights (START_FROM,
    which must have ``spec``'s backbone and channels), else ``spec``'s new model, its input statistics from
    ``images`` outside ``is_held_out`` (the fold's training rows)."""
    if start_stage is not None:
        built = stage_config.read_model(start_stage)
        if (built.backbone, built.channels) != (spec.backbone, spec.channels):
            raise errors.InputError(
                f"START_FROM {Path(start_stage).name} was trained as {built.backbone}/{built.channels}, "
                f"but BACKBONE/CHANNELS are {spec.backbone}/{spec.channels}: make them agree"
            )
        with scope():
            return stage_model.model_from_stage(start_stage, spec.image_size, freeze_batch_norm=spec.freeze_batch_norm)
    with scope():
        model = spec.build()
    models.set_input_statistics(model, images, np.flatnonzero(~np.asarray(is_held_out, bool)))
    return model


def save_fold(fold_dir, model, history, *, out_of_fold, test_prediction, **details) -> dict:
    """Write a fold's out-of-fold and test predictions, its weights, history and metrics.json (with ``details``)."""
    fold_dir = Path(fold_dir)
    stage_files.save_array(fold_dir / stages.OOF_FILE, out_of_fold)
    stage_files.save_array(fold_dir / stages.TEST_PREDICTIONS_FILE, test_prediction)
    return stage_model.save_stage(fold_dir, model, history, scores={"rows": len(out_of_fold)}, **details)


def merge_folds(stage_dir, fold_of: np.ndarray, n_test: int):
    """Whatever folds are finished in stage_dir: (oof (N, 28) with NaN rows for missing folds, the finished folds'
    test predictions (a list), finished folds). Each training image gets exactly its own fold's prediction."""
    stage_dir = Path(stage_dir)
    oof = np.full((len(fold_of), labels.NUM_CLASSES), np.nan, dtype=np.float32)
    test_predictions, finished = [], []
    for fold in range(int(fold_of.max()) + 1):
        fold_dir = stage_dir / f"fold_{fold}"
        if not stages.is_finished(fold_dir):
            continue
        rows = np.flatnonzero(fold_of == fold)
        fold_oof, fold_test = np.load(fold_dir / stages.OOF_FILE), np.load(fold_dir / stages.TEST_PREDICTIONS_FILE)
        if fold_oof.shape != (len(rows), labels.NUM_CLASSES) or fold_test.shape != (n_test, labels.NUM_CLASSES):
            raise errors.InputError(
                f"{fold_dir}: predictions of shape {fold_oof.shape} / {fold_test.shape} do not fit "
                f"fold {fold} ({len(rows)} images) and {n_test} test images; was {stages.FOLDS_FILE} changed?"
            )
        oof[rows] = fold_oof
        test_predictions.append(fold_test)
        finished.append(fold)
    return oof, test_predictions, finished


def rows_to_score(oof: np.ndarray, missing: list, *, stopped_early: str = "", seen=None) -> np.ndarray | None:
    """Which training images the thresholds and the scores use: all, once every fold is there; the finished
    folds' images when the stage stopped early for its time limit; None (wait for FOLDS=missing) otherwise. Never
    an image the starting weights trained on (``seen``: ``seen_in_training``)."""
    if missing and not stopped_early:
        return None
    predicted = ~np.isnan(oof).any(axis=1)
    return np.flatnonzero(predicted if seen is None else predicted & ~np.asarray(seen, bool))


def images_seen_in_training(oof: np.ndarray, seen) -> int:
    """How many out-of-fold predictions come from folds whose starting weights trained on the image (0: honest)."""
    return int(np.sum(~np.isnan(oof).any(axis=1) & np.asarray(seen, bool)))

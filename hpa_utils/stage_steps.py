"""A training stage's common steps: its data and split, its model, its evaluation and its files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from hpa_utils import cache, checks, dataset, environment, external, files, folds, labels, metrics, stages


@dataclasses.dataclass
class TrainingData:
    """The training set of a stage: label table, cached uint8 images, multi-hot targets, validation flags."""

    data_dir: Path
    table: pd.DataFrame
    images: np.ndarray
    targets: np.ndarray
    is_validation: np.ndarray
    external_images: int = 0  # rows at the end from EXTERNAL_DIR: training only
    external_dropped: int = 0  # EXTERNAL_DIR images left out as near-duplicates of validation or test images

    @property
    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.is_validation)

    @property
    def validation_indices(self) -> np.ndarray:
        return np.flatnonzero(self.is_validation)

    def describe(self) -> str:
        extra = f", {self.external_images} of them external" if self.external_images else ""
        return (
            f"{len(self.table)} images ({len(self.train_indices)} training{extra}, {len(self.validation_indices)} "
            f"validation), {'decoded on the fly' if isinstance(self.images, cache.StreamedImages) else 'cached'} "
            f"as {self.images.shape} uint8"
        )


def load_training_data(
    data_dir,
    image_size: int,
    channels: str,
    *,
    stage_dir,
    validation_fraction: float = 0.2,
    seed: int = 0,
    split_from=None,
    external_dir: str = "",
    cache_mode: str = "memmap",
) -> TrainingData:
    """Read train.csv, cache the images and fix the validation split, saved as stage_dir/validation_split.csv.

    split_from: a stage folder whose validation_split.csv to reuse (so 01, 02 and 03 score the same
    images); without one the split is made (multilabel-stratified, seeded). external_dir: a Kaggle-layout
    folder of extra training images, appended for training only (never validation), minus near-duplicates of
    the validation and test images. cache_mode: the CACHE parameter (``cache.build_cache``'s mode).
    """
    table = dataset.read_train_labels(data_dir)
    targets = labels.to_multi_hot(table["labels"], dtype=np.float32)
    upstream_split = Path(split_from) / stages.SPLIT_FILE if split_from else None
    if upstream_split is not None and upstream_split.is_file():
        is_validation = folds.read_split(upstream_split, expected_ids=table["Id"])["is_validation"].to_numpy()
    else:
        is_validation = folds.validation_split(targets.astype(np.uint8), validation_fraction, seed)
    folds.write_split(Path(stage_dir) / stages.SPLIT_FILE, table["Id"], is_validation)
    images = cache.build_cache(data_dir, "train", table["Id"], image_size, channels, mode=cache_mode)
    data = TrainingData(Path(data_dir), table, images, targets, is_validation)
    if not external_dir:
        return data
    return add_external(data, external_dir, image_size=image_size, channels=channels, cache_mode=cache_mode)


def add_external(
    data: TrainingData, external_dir, *, image_size: int, channels: str, cache_mode: str = "memmap"
) -> TrainingData:
    """``data`` with EXTERNAL_DIR's images appended as training rows (see external.load_external)."""
    test_ids = dataset.read_sample_submission(data.data_dir)["Id"]
    test_images = cache.build_cache(data.data_dir, "test", test_ids, image_size, channels, mode=cache_mode)
    held_out = [np.asarray(data.images[data.validation_indices]), test_images]
    extra = external.load_external(
        external_dir, image_size=image_size, channels=channels, held_out=held_out, competition_ids=data.table["Id"]
    )
    images, targets, is_validation = external.with_external(
        data.images, data.targets, data.is_validation, extra, extra_group=False
    )
    kept = np.flatnonzero(extra.keep)
    table = pd.concat([data.table, pd.DataFrame({"Id": extra.ids[kept]})], ignore_index=True)
    return TrainingData(data.data_dir, table, images, targets, is_validation, extra.count, extra.dropped)


def external_for_folds(external_dir, *, images, targets, fold_of, test_images, ids, image_size: int, channels: str):
    """04's training arrays with EXTERNAL_DIR's images appended as fold -1 (in no fold's held-out rows), minus
    near-duplicates of any competition image (every training image is held out by one fold) or test image:
    (images, targets, fold of each row, counts for metrics.json)."""
    if not external_dir:
        return images, targets, fold_of, {"external_images": 0, "external_dropped": 0}
    extra = external.load_external(
        external_dir, image_size=image_size, channels=channels, held_out=[images, test_images], competition_ids=ids
    )
    counts = {"external_images": extra.count, "external_dropped": extra.dropped}
    return (*external.with_external(images, targets, fold_of, extra, extra_group=-1), counts)


def evaluate(probabilities, targets, train_targets, min_positives: int = 5) -> dict:
    """Validation scores: macro F1 at 0.5, at the best global threshold (with its 95 % bootstrap interval over the
    images, the threshold held fixed), per-class F1, the prior baseline."""
    report = metrics.threshold_report(targets, probabilities, min_positives)
    best = metrics.apply_thresholds(probabilities, report["best_global_threshold"], at_least_one=False)
    return {
        "scored_on": "validation",
        "images_scored": len(targets),
        "f1_at_0.5": report["f1_at_0.5"],
        stages.HEADLINE: report["f1_at_best_global"],
        stages.HEADLINE + "_ci95": metrics.f1_interval(targets, best),
        "best_global_threshold": report["best_global_threshold"],
        "per_class_f1": [round(float(value), 4) for value in metrics.per_class_f1(targets, best)],
        "prior_baseline_f1": metrics.prior_baseline_f1(train_targets, targets),
    }


def evaluate_validation(probabilities, data: TrainingData, *, stage_dir) -> dict:
    """``evaluate`` on the validation split, keeping its predictions (predictions.npz) for the stage comparisons."""
    rows = data.validation_indices
    scores = evaluate(probabilities, data.targets[rows], data.targets[data.train_indices])
    scores |= {"external_images": data.external_images, "external_dropped": data.external_dropped}
    stages.write_predictions(
        stage_dir,
        ids=data.table["Id"].to_numpy()[rows],
        targets=data.targets[rows],
        probabilities=probabilities,
        threshold=scores["best_global_threshold"],
        image_set=scores["scored_on"],
    )
    return scores


def save_stage(stage_dir, model, *, history: pd.DataFrame, scores: dict, **details) -> dict:
    """Write the stage's weights (legacy .h5), history.csv and, last, metrics.json; return the metrics."""
    from hpa_utils import models

    stage_dir = Path(stage_dir)
    models.save_weights(model, stage_dir / stages.WEIGHTS_FILE)
    with files.atomic_write(stage_dir / stages.HISTORY_FILE) as temporary:
        history.to_csv(temporary, index=False)
    result = {**scores, "epochs": int(len(history)), **details, "weights": stages.WEIGHTS_FILE}
    stages.write_metrics(stage_dir, result)
    return result


def upstream_batch_norm(info: dict) -> bool:
    """Whether a finished stage (its metrics.json) kept its backbone's BatchNormalization frozen; a stage written
    before FREEZE_BATCH_NORM existed froze it for pretrained weights."""
    from hpa_utils import models

    return bool(info.get("freeze_batch_norm", models.is_pretrained(info.get("backbone_weights", "none"))))


def model_from_stage(stage_path, image_size: int | None = None, *, freeze_batch_norm: bool | None = None):
    """Rebuild a finished stage's model and load its weights; at a larger image_size, the upscale model.

    The architecture (backbone, channels, sizes, dropout) comes from the stage's metrics.json, and so does its
    BatchNormalization choice unless ``freeze_batch_norm`` is given. At another image_size an ``upscale_adapter``
    is inserted and every other layer loads by name.
    """
    from hpa_utils import models

    stage_path = Path(stage_path)
    info = stages.read_metrics(stage_path)
    if freeze_batch_norm is None:
        freeze_batch_norm = upstream_batch_norm(info)
    source_size = info["image_size"]
    image_size = image_size or source_size
    build_from = info.get("source_image_size") if image_size == source_size else source_size
    model = models.build_model(
        info["backbone"],
        image_size,
        info["channels"],
        weights="none",
        dropout=info.get("dropout", 0.5),
        source_image_size=build_from,
        freeze_batch_norm=freeze_batch_norm,
    )
    matched = models.transfer_weights(model, stage_path / info.get("weights", stages.WEIGHTS_FILE))
    print(f"loaded {len(matched)} layers by name from {stage_path.name}: {', '.join(matched)}")
    return model


FOLD_FILES = (stages.METRICS_FILE, stages.OOF_FILE, stages.TEST_PREDICTIONS_FILE, stages.HISTORY_FILE)  # merging reads


def gather_fold_kernels(stage_dir, root=None) -> list[int]:
    """The merge kernel's inputs (kaggle-export --fold-kernels): every mounted fold kernel's output, found by
    what it holds (``04_kfold/folds.csv`` and ``fold_<k>/metrics.json``) in any mount layout, its predictions,
    metrics and history copied into stage_dir/fold_<k>/ and the folds.csv they share into stage_dir. Returns
    the folds found. Raises ValueError when two fold kernels split the images differently, InputNotFoundError
    when no fold kernel's output is mounted."""
    stage_dir, root = Path(stage_dir), root or environment.kaggle_input()
    found_outputs = environment.find_stage_outputs(stage_dir.name, stages.FOLDS_FILE, root)
    outputs = [path for path in found_outputs if path != stage_dir]
    if not outputs:
        raise environment.InputNotFoundError(
            f"no fold kernel's output ({stage_dir.name}/{stages.FOLDS_FILE}) under {root}: add the kernels "
            f"hpa-04-kfold-fold-<k> to this notebook (kernel-metadata.json: kernel_sources) once they have "
            f"finished.\n{environment.mounted(root)}"
        )
    reference = outputs[0] / stages.FOLDS_FILE
    for output in outputs[1:]:
        if (output / stages.FOLDS_FILE).read_bytes() != reference.read_bytes():
            raise ValueError(
                f"{output / stages.FOLDS_FILE} differs from {reference}: the fold kernels split the images "
                "differently; run them all with the same SEED, N_FOLDS and data"
            )
    files.copy_file(reference, stage_dir / stages.FOLDS_FILE)
    found = {}
    for output in outputs:
        for fold_dir in sorted(output.glob("fold_*")):
            fold = fold_dir.name.removeprefix("fold_")
            if fold.isdigit() and stages.is_finished(fold_dir) and int(fold) not in found:
                for name in FOLD_FILES:
                    if (fold_dir / name).is_file():
                        files.copy_file(fold_dir / name, stage_dir / fold_dir.name / name)
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
            raise ValueError(
                f"{path} has {fold_of.max() + 1} folds but N_FOLDS = {n_folds}; "
                "use the same N_FOLDS, or a new OUTPUT_DIR"
            )
        return fold_of
    fold_of = folds.make_folds(np.asarray(targets, dtype=np.uint8), n_folds, seed)
    folds.write_folds(path, ids, fold_of)
    return fold_of


def folds_to_train(requested: list, n_folds: int) -> list[int]:
    """FOLDS as given ([] means all), checked against N_FOLDS."""
    chosen = list(requested) or list(range(n_folds))
    wrong = [fold for fold in chosen if not checks.is_integer(fold) or not 0 <= fold < n_folds]
    if wrong:
        raise ValueError(f"FOLDS {wrong}: each fold must be an integer 0..{n_folds - 1} (N_FOLDS = {n_folds})")
    return chosen


def fold_batch_norm(setting: str, start_stage, weights: str) -> bool:
    """FREEZE_BATCH_NORM for 04's folds: "auto" keeps START_FROM's choice, or (no START_FROM) follows ``weights``."""
    from hpa_utils import models

    upstream = upstream_batch_norm(stages.read_metrics(start_stage)) if start_stage else None
    return models.batch_norm_frozen(setting, weights, upstream=upstream)


def start_model(
    start_stage,
    *,
    image_size: int,
    backbone: str,
    channels: str,
    weights: str,
    freeze_batch_norm: bool,
    images,
    is_held_out,
):
    """The model a fold starts from: a finished stage's weights (START_FROM), else a new model.

    A new model's input statistics come from ``images`` outside ``is_held_out`` (the fold's training rows).
    """
    from hpa_utils import models

    if start_stage is None:
        model = models.build_model(backbone, image_size, channels, weights, freeze_batch_norm=freeze_batch_norm)
        models.set_input_statistics(model, images, np.flatnonzero(~np.asarray(is_held_out, bool)))
        return model
    info = stages.read_metrics(start_stage)
    if (info["backbone"], info["channels"]) != (backbone, channels):
        raise ValueError(
            f"START_FROM {Path(start_stage).name} was trained as {info['backbone']}/{info['channels']}, "
            f"but BACKBONE/CHANNELS are {backbone}/{channels}: make them agree"
        )
    return model_from_stage(start_stage, image_size, freeze_batch_norm=freeze_batch_norm)


def save_fold(
    fold_dir, model, history, *, images, is_fold, test_images, views: int, batch_size: int, **details
) -> dict:
    """Predict the fold's held-out images (out-of-fold) and the test set with TTA; write them, the weights and the
    fold's metrics.json (with ``details``)."""
    from hpa_utils import predict

    fold_dir = Path(fold_dir)
    oof = predict.predict_tta(model, images[np.flatnonzero(is_fold)], views=views, batch_size=batch_size)
    test_prediction = predict.predict_tta(model, test_images, views=views, batch_size=batch_size)
    save_array(fold_dir / stages.OOF_FILE, oof)
    save_array(fold_dir / stages.TEST_PREDICTIONS_FILE, test_prediction)
    return save_stage(fold_dir, model, history=history, scores={"rows": int(is_fold.sum())}, views=views, **details)


def merge_folds(stage_dir, fold_of: np.ndarray, n_test: int):
    """Combine whatever folds are finished in stage_dir: (oof (N, 28) with NaN rows for missing folds,
    mean test prediction, finished folds). Each training image gets exactly its own fold's prediction."""
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
            raise ValueError(
                f"{fold_dir}: predictions of shape {fold_oof.shape} / {fold_test.shape} do not fit "
                f"fold {fold} ({len(rows)} images) and {n_test} test images; was {stages.FOLDS_FILE} changed?"
            )
        oof[rows] = fold_oof
        test_predictions.append(fold_test)
        finished.append(fold)
    test_prediction = np.mean(test_predictions, axis=0) if test_predictions else None
    return oof, test_prediction, finished


def rows_to_score(oof: np.ndarray, missing: list, *, stopped_early: str = "") -> np.ndarray | None:
    """Which training images the thresholds and the submission use: all, once every fold is there; the finished
    folds' images when the stage stopped early for its time limit; None (wait for FOLDS=missing) otherwise."""
    if missing and not stopped_early:
        return None
    return np.flatnonzero(~np.isnan(oof).any(axis=1))


def save_array(path, array) -> Path:
    """np.save, atomically."""
    with files.atomic_write(path) as temporary:
        np.save(temporary, array)
    return Path(path)


def train_and_validation_pipelines(
    images, targets, is_validation, *, batch_size: int, augmentation: str = "none", seed: int = 0, replicas: int = 1
):
    """(training, validation) tf.data pipelines over one image array: shuffled and augmented for training,
    plain for the held-out rows (``is_validation``: the validation split, or one fold). ``batch_size`` is global
    (all ``replicas`` together; see ``hardware``)."""
    from hpa_utils import inputs

    train_data = inputs.make_dataset(
        images,
        targets,
        batch_size,
        shuffle=True,
        augmentation=augmentation,
        seed=seed,
        indices=np.flatnonzero(~is_validation),
        replicas=replicas,
    )
    validation_data = inputs.make_dataset(
        images, targets, batch_size, indices=np.flatnonzero(is_validation), replicas=replicas
    )
    return train_data, validation_data


def save_thresholds(stage_dir, report: dict) -> Path:
    """thresholds.json: the global and the 28 per-class thresholds, by class number and name."""
    return files.write_json(
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


def score_if_labelled(data_dir, submission: pd.DataFrame) -> float | None:
    """The submission's macro F1 against test_labels.csv, as the leaderboard scores it; None without labels."""
    from hpa_utils import predict

    test_labels = dataset.read_test_labels(data_dir)
    if test_labels is None:
        print("no test_labels.csv: the leaderboard scores this submission")
        return None
    score = predict.score_submission(submission, test_labels)
    print(f"test macro F1 of {stages.SUBMISSION_FILE}: {score:.4f}")
    return score


def save_kfold_metrics(stage_dir, report: dict, *, ids, targets, oof, test_f1, **details) -> dict:
    """metrics.json of the k-fold stage: OOF macro F1 at 0.5 / best global / per-class thresholds (with 95 %
    bootstrap intervals over the images), test F1; and the OOF predictions (predictions.npz)."""
    at_global = metrics.apply_thresholds(oof, report["best_global_threshold"], at_least_one=False)
    chosen = metrics.apply_thresholds(oof, report["per_class_thresholds"], at_least_one=True)
    scored_on = stages.record("04_kfold").scored_on
    result = {
        "scored_on": scored_on,
        "images_scored": len(targets),
        "f1_at_0.5": report["f1_at_0.5"],
        stages.HEADLINE: report["f1_at_best_global"],
        stages.HEADLINE + "_ci95": metrics.f1_interval(targets, at_global),
        "f1_at_per_class": report["f1_at_per_class"],
        "f1_at_per_class_ci95": metrics.f1_interval(targets, chosen),
        "test_f1": test_f1,
        "best_global_threshold": report["best_global_threshold"],
        "per_class_f1": [round(float(value), 4) for value in metrics.per_class_f1(targets, chosen)],
        "prior_baseline_f1": metrics.prior_baseline_f1(targets, targets),
        **details,
    }
    stages.write_predictions(
        stage_dir,
        ids=ids,
        targets=targets,
        probabilities=oof,
        threshold=report["best_global_threshold"],
        image_set=scored_on,
    )
    stages.write_metrics(stage_dir, result)
    return result

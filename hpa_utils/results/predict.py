"""Prediction: test-time augmentation over the dihedral group, and the submission file."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
from tqdm import tqdm

from hpa_utils import errors
from hpa_utils.dataset import labels
from hpa_utils.results import metrics
from hpa_utils.system import hardware
from hpa_utils.system.atomic_files import atomic_write
from hpa_utils.training import augment
from hpa_utils.training.augment import DIHEDRAL_VIEWS


class SubmissionError(errors.InputError):
    """A submission that Kaggle would reject or mis-score; ``problems`` lists every problem found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("invalid submission:\n" + "\n".join(f"- {problem}" for problem in self.problems))


def dihedral(batch, index: int):
    """View ``index`` (0..7) of an NHWC batch in Keras ops (any backend): the table ``augment.DIHEDRAL_STEPS``, as
    ``inputs.dihedral_tf`` applies it in the input pipeline."""
    swap, reversed_axes = augment.DIHEDRAL_STEPS[index]
    if swap:
        batch = keras.ops.transpose(batch, (0, 2, 1, 3))
    for axis in reversed_axes:
        batch = keras.ops.flip(batch, axis=1 + axis)
    return batch


class ViewAverage:
    """A model's mean output over the first ``views`` dihedral views of each image, as a Keras model of its own
    (the model's layers, shared), so that Keras compiles its prediction once for the backend and this object keeps
    it. A batch is padded to a multiple of the devices and the padding dropped: every image counts once. Under JAX,
    which compiles once per batch shape, the last batch is padded to the others' size (one compilation per call)."""

    def __init__(self, model: keras.Model, views: int = DIHEDRAL_VIEWS):
        if not errors.is_integer(views) or not 1 <= views <= DIHEDRAL_VIEWS:
            raise errors.InputError(f"views must be an integer in 1..{DIHEDRAL_VIEWS}, got {views!r}")
        self.views, self.devices = int(views), hardware.devices_of(model)
        with hardware.scope_of(model):
            images = keras.Input(model.input_shape[1:], name="images")
            stacked = keras.ops.concatenate([dihedral(images, index) for index in range(self.views)], axis=0)
            outputs = keras.ops.cast(model(keras.ops.cast(stacked, model.inputs[0].dtype)), "float32")
            outputs = keras.ops.reshape(outputs, (self.views, -1, outputs.shape[-1]))
            self.model = keras.Model(images, keras.ops.mean(outputs, axis=0), name=f"{model.name}_x{self.views}")

    def __call__(self, images, *, batch_size: int = 32, progress: bool = True) -> np.ndarray:
        """The mean outputs (N, classes) float32 of ``images`` (an NHWC array or memmap, read batch by batch)."""
        if batch_size < 1:
            raise errors.InputError(f"batch_size must be at least 1, got {batch_size}")
        if getattr(images, "ndim", None) != 4:
            raise errors.InputError(f"images must be an NHWC array, got shape {getattr(images, 'shape', None)}")
        count, height, width, _ = images.shape
        if self.views > 1 and height != width:
            raise errors.InputError(f"rotated views need square images, got {height}x{width}; use views=1")
        results = [np.zeros((0, int(self.model.outputs[0].shape[-1])), np.float32)]
        bar = tqdm(total=count, desc=f"predict x{self.views} views", unit="image", disable=not progress, leave=False)
        whole = min(batch_size, count) if keras.backend.backend() == "jax" else 0  # the size a last batch fills to
        with bar:  # shown while it runs, gone when done: a cell that predicts in a loop keeps no trail of bars
            for start in range(0, count, batch_size):
                batch = np.ascontiguousarray(images[start : start + batch_size])
                results.append(self._predict(batch, height, max(whole, len(batch))))
                bar.update(len(batch))
        return np.concatenate(results).astype(np.float32, copy=False)

    def _predict(self, batch: np.ndarray, image_size: int, size: int) -> np.ndarray:
        """One batch, padded to ``size`` rounded up to a multiple of the devices (the padding's outputs dropped)."""
        padding = size - len(batch) + -size % self.devices
        padded = np.concatenate([batch, np.zeros((padding, *batch.shape[1:]), batch.dtype)]) if padding else batch
        try:
            return np.asarray(self.model.predict_on_batch(padded))[: len(batch)]
        except Exception as error:  # a device out of memory gets a message that says what to try
            if not hardware.is_out_of_memory(error):
                raise
            doing = f"predicting ({self.views} views of each image in one call)"
            raise hardware.out_of_memory(
                doing, image_size=image_size, batch_size=len(padded), replicas=self.devices
            ) from error


_KEPT: dict = {}  # predict_tta's ViewAverage of the last model, per view count: {"model": model, views: average}


def predict_tta(model, images, views: int = DIHEDRAL_VIEWS, batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """Mean model output (N, classes) float32 over the first ``views`` dihedral views of each image (``ViewAverage``):
    ``views=1`` is plain prediction. Each step stacks all views of ``batch_size`` images into one model call.
    The last model's ``ViewAverage`` per view count is kept, so its compiled prediction is traced once, not per call.
    Raises ValueError for views outside 1..8, a non-4-D array, or non-square images with views > 1."""
    if _KEPT.get("model") is not model:
        _KEPT.clear()
        _KEPT["model"] = model
    if views not in _KEPT:
        _KEPT[views] = ViewAverage(model, views)
    return _KEPT[views](images, batch_size=batch_size, progress=progress)


def _duplicates(ids) -> list:
    index = pd.Index(ids)
    return list(index[index.duplicated()].unique())


def _id_problems(ids: list[str], sample_ids: list[str]) -> list[str]:
    """Duplicate, missing and extra Ids of ``ids`` against the sample submission's, one message each."""
    problems = []
    if duplicates := _duplicates(ids):
        problems.append(f"duplicate Ids: {errors.show_ids(duplicates)}")
    present = set(ids)
    if missing := [image_id for image_id in sample_ids if image_id not in present]:
        problems.append(f"missing Ids (in the sample submission, not in this one): {errors.show_ids(missing)}")
    expected = set(sample_ids)
    if extra := [image_id for image_id in ids if image_id not in expected]:
        problems.append(f"extra Ids (not in the sample submission): {errors.show_ids(extra)}")
    return problems


def make_submission(sample_submission_df, ids, multi_hot) -> pd.DataFrame:
    """DataFrame[Id, Predicted] in the sample submission's Id order; ``multi_hot`` (N, 28) row i belongs to ``ids[i]``.

    Raises ValueError when ``ids`` has duplicates, misses or adds Ids, or a row has no label
    (threshold with ``metrics.apply_thresholds(..., at_least_one=True)``).
    """
    ids = [str(image_id) for image_id in ids]
    multi_hot = np.asarray(multi_hot)
    if multi_hot.shape != (len(ids), labels.NUM_CLASSES):
        raise errors.InputError(
            f"multi_hot has shape {multi_hot.shape}, expected ({len(ids)}, {labels.NUM_CLASSES}) for {len(ids)} ids"
        )
    sample_ids = sample_submission_df["Id"].astype(str).tolist()
    if problems := _id_problems(ids, sample_ids):
        raise SubmissionError(problems)
    predicted = pd.Series([labels.format_target(np.flatnonzero(row)) for row in multi_hot], index=ids)
    submission = pd.DataFrame({"Id": sample_ids, "Predicted": predicted.loc[sample_ids].tolist()})
    validate_submission(submission, sample_submission_df)
    return submission


def _as_text(value) -> str:
    """A Predicted / Target cell as text: pandas reads a column of single labels as integers, blanks as NaN."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return ""
    if errors.is_integer(value):
        return str(int(value))
    return str(value)


def _prediction_problem(value) -> tuple[str, str] | None:
    """What is wrong with one Predicted value, as (kind, detail), or None."""
    try:
        labels.parse_target(_as_text(value))
    except labels.TargetError as error:
        if error.kind == "empty":
            return "empty prediction", ""
        if error.kind == "non-integer label":
            return error.kind, f" ({error.culprit!r})"
        return f"label outside 0..{labels.NUM_CLASSES - 1}", f" ({error.culprit})"
    return None


def validate_submission(df, sample_submission_df) -> None:
    """Check a submission against the sample submission; raise SubmissionError (a ValueError) naming every problem:
    missing columns, duplicate / missing / extra Ids, Ids in the wrong order, labels outside 0..27, empty predictions.
    """
    missing_columns = [name for name in ("Id", "Predicted") if name not in df.columns]
    if missing_columns:
        raise SubmissionError([f"missing column(s) {missing_columns}, found {list(df.columns)}"])
    ids = df["Id"].astype(str).tolist()
    sample_ids = sample_submission_df["Id"].astype(str).tolist()
    problems = _id_problems(ids, sample_ids)
    if not problems and ids != sample_ids:
        row = next(row for row, (image_id, sample_id) in enumerate(zip(ids, sample_ids)) if image_id != sample_id)
        problems.append(f"wrong order: row {row} has Id {ids[row]}, the sample submission has {sample_ids[row]}")
    culprits_by_kind = {}
    for image_id, text in zip(ids, df["Predicted"].tolist()):
        if (problem := _prediction_problem(text)) is not None:
            kind, detail = problem
            culprits_by_kind.setdefault(kind, []).append(f"{image_id}{detail}")
    for kind, culprits in culprits_by_kind.items():
        problems.append(f"{kind} for Ids: {errors.show_ids(culprits)}")
    if problems:
        raise SubmissionError(problems)


def write_submission(path, df, sample_submission_df) -> Path:
    """Validate ``df`` and write it as CSV atomically; on a problem the existing file is left untouched."""
    validate_submission(df, sample_submission_df)
    with atomic_write(path) as temporary:
        df[["Id", "Predicted"]].to_csv(temporary, index=False)
    return Path(path)


def score_submission(submission_df, test_labels_df) -> float:
    """Macro F1 of a submission (Id, Predicted) against test labels (Id, Target), as the leaderboard computes it.

    Scores the Ids of ``test_labels_df``; raises ValueError when the submission misses some or repeats one.
    """
    submission_ids = submission_df["Id"].astype(str)
    if duplicates := _duplicates(submission_ids):
        raise SubmissionError([f"duplicate Ids: {errors.show_ids(duplicates)}"])
    predicted_of = dict(zip(submission_ids, submission_df["Predicted"].tolist()))
    test_ids = test_labels_df["Id"].astype(str).tolist()
    if missing := [image_id for image_id in test_ids if image_id not in predicted_of]:
        raise SubmissionError([f"missing Ids (in the test labels, not in the submission): {errors.show_ids(missing)}"])
    true_labels = [
        labels.parse_target(_as_text(target), where=f"test labels Id {image_id}")
        for image_id, target in zip(test_ids, test_labels_df["Target"].tolist())
    ]
    predicted_labels = []
    for image_id in test_ids:
        text = _as_text(predicted_of[image_id])
        predicted_labels.append(labels.parse_target(text, where=f"submission Id {image_id}") if text.strip() else [])
    return metrics.macro_f1(labels.to_multi_hot(true_labels), labels.to_multi_hot(predicted_labels))

"""A training stage's images: the label table, the cached uint8 images, the validation split, external rows, and
the tf.data pipelines over them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from hpa_utils import dataset, stages
from hpa_utils.dataset import cache, external, folds, labels
from hpa_utils.training import inputs


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

    def external_counts(self) -> dict:
        """What metrics.json keeps of EXTERNAL_DIR."""
        return {"external_images": self.external_images, "external_dropped": self.external_dropped}


def load_training_data(
    data_dir,
    image_size: int,
    channels: str,
    *,
    stage_dir,
    validation_fraction: float = 0.2,
    seed: int = 0,
    split_from=None,
    cache_mode: str = "memmap",
) -> TrainingData:
    """Read train.csv, cache the images and fix the validation split, saved as stage_dir/validation_split.csv.

    split_from: a stage folder whose validation_split.csv to reuse (so 01, 02 and 03 score the same
    images); without one the split is made (multilabel-stratified, seeded). cache_mode: the CACHE parameter
    (``cache.build_cache``'s mode). EXTERNAL_DIR's images join with ``add_external``.
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
    return TrainingData(Path(data_dir), table, images, targets, is_validation)


def add_external(
    data: TrainingData, external_dir, *, image_size: int, channels: str, cache_mode: str = "memmap"
) -> TrainingData:
    """``data`` with EXTERNAL_DIR's images appended as training rows (never validation), minus near-duplicates of
    the validation and test images (see external.load_external); ``data`` itself without an ``external_dir``."""
    if not external_dir:
        return data
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


def train_and_validation_pipelines(
    images, targets, is_validation, *, batch_size: int, augmentation: str = "none", seed: int = 0, replicas: int = 1
):
    """(training, validation) tf.data pipelines over one image array: shuffled and augmented for training,
    plain for the held-out rows (``is_validation``: the validation split, or one fold). ``batch_size`` is global
    (all ``replicas`` together; see ``hardware``)."""
    train_data = inputs.make_dataset(
        images,
        targets,
        batch_size,
        shuffle=True,
        augmentation=augmentation,
        seed=seed,
        indices=np.flatnonzero(~np.asarray(is_validation, bool)),
        replicas=replicas,
    )
    validation_data = inputs.make_dataset(
        images, targets, batch_size, indices=np.flatnonzero(np.asarray(is_validation, bool)), replicas=replicas
    )
    return train_data, validation_data

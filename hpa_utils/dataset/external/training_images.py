"""EXTERNAL_DIR in a training stage: extra images for training only, minus near-duplicates of held-out images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hpa_utils import errors
from hpa_utils.dataset import cache, labels
from hpa_utils.dataset.external.duplicates import near_duplicates
from hpa_utils.dataset.label_files import read_train_labels


@dataclasses.dataclass
class ExternalImages:
    """The images of a Kaggle-layout folder of extra training images; ``keep`` marks those that passed the check."""

    folder: Path
    ids: np.ndarray
    images: np.ndarray  # every image of the folder (the cache's memmap)
    targets: np.ndarray  # multi-hot, every image
    keep: np.ndarray  # bool: not a near-duplicate of a held-out image

    @property
    def count(self) -> int:
        return int(self.keep.sum())

    @property
    def dropped(self) -> int:
        return int((~self.keep).sum())


def load_external(external_dir, *, image_size: int, channels: str, held_out: list, competition_ids) -> ExternalImages:
    """EXTERNAL_DIR's train.csv and images (cached like the competition's), each checked against every image of
    ``held_out`` (arrays: validation and test images, say) by a perceptual hash of the green channel.

    Raises ValueError when the folder shares an Id with the competition data (the same image twice).
    """
    folder = Path(external_dir).expanduser().resolve()
    table = read_train_labels(folder)
    shared = sorted(set(table["Id"]) & {str(image_id) for image_id in competition_ids})
    if shared:
        raise errors.InputError(
            f"EXTERNAL_DIR {folder}: {len(shared)} Ids are also competition images ({', '.join(shared[:5])}...); "
            "external images must be other images"
        )
    images = cache.build_cache(folder, "train", table["Id"], image_size, channels)
    keep = ~near_duplicates(images, held_out)
    external = ExternalImages(
        folder, table["Id"].to_numpy(), images, labels.to_multi_hot(table["labels"], dtype=np.float32), keep
    )
    print(
        f"external: {external.count} training images from {folder}; {external.dropped} dropped as near-duplicates "
        f"of the {sum(len(images) for images in held_out)} images this stage holds out or predicts"
    )
    return external


def with_external(images, targets, groups, external: ExternalImages | None, *, extra_group):
    """The training arrays with the kept external images appended (on disk, not in memory): (images, targets,
    groups), ``groups`` (a validation flag or a fold number per image) set to ``extra_group`` for them: never
    held out. Without ``external`` the arrays come back as they are."""
    if external is None or external.count == 0:
        return images, targets, groups
    rows = np.flatnonzero(external.keep)
    combined = cache.stacked([(images, None), (external.images, rows)])
    extra = np.full(len(rows), extra_group, dtype=np.asarray(groups).dtype)
    return combined, np.concatenate([targets, external.targets[rows]]), np.concatenate([groups, extra])

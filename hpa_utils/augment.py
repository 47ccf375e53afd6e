"""Image augmentation: the imgaug pipelines by name, and the 8 dihedral views used for TTA."""

from __future__ import annotations

import numpy as np

AUGMENTATIONS = ("none", "dihedral", "strong")
DIHEDRAL_VIEWS = 8


def _augmenters():
    """``imgaug.augmenters``, imported after the NumPy 2 compatibility step (the one place it runs).

    Where imgaug is not installed (a Kaggle image without it) it comes from the hpa-utils dataset's wheel.
    """
    from hpa_utils import compat, wheels

    compat.patch_numpy_for_imgaug()
    return wheels.import_module("imgaug.augmenters")


def _dihedral_augmenter(iaa):
    """One of the 8 dihedral views, uniformly; element ``index`` equals ``dihedral(images, index)``."""
    views = []
    for index in range(DIHEDRAL_VIEWS):
        # imgaug's Rot90 turns clockwise, np.rot90 counter-clockwise: k counter-clockwise = -k clockwise.
        steps = [iaa.Rot90((-index) % 4, keep_size=True)]
        if index >= 4:
            steps.append(iaa.Fliplr(1.0))
        views.append(iaa.Sequential(steps, name=f"dihedral_{index}"))
    return iaa.OneOf(views, name="dihedral")


def build_augmenter(name: str):
    """The imgaug augmenter called ``name`` (one of AUGMENTATIONS); None for "none".

    "dihedral": one of the 8 rotations/flips (the public kernel's idea, completed to the whole group).
    "strong": dihedral, then a mild affine (scale 0.9-1.1, shift up to 5%, rotate up to 10 degrees),
    per-channel brightness 0.8-1.2 and, half of the time, a light Gaussian blur.
    Raises ValueError for an unknown name.
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; expected one of {', '.join(AUGMENTATIONS)}")
    if name == "none":
        return None
    iaa = _augmenters()
    if name == "dihedral":
        return _dihedral_augmenter(iaa)
    return iaa.Sequential(
        [
            _dihedral_augmenter(iaa),
            iaa.Affine(
                scale=(0.9, 1.1),
                translate_percent=(-0.05, 0.05),
                rotate=(-10, 10),
                order=1,
                mode="constant",
                cval=0,
            ),
            iaa.Multiply((0.8, 1.2), per_channel=True),
            iaa.Sometimes(0.5, iaa.GaussianBlur(sigma=(0.0, 0.8))),
        ],
        name="strong",
    )


def augment_batch(images: np.ndarray, augmenter, seed: int) -> np.ndarray:
    """Augment an NHWC uint8 batch with ``augmenter`` (None: returned unchanged).

    The result depends only on the images and ``seed`` (any int), never on earlier calls, so
    parallel calls on the same augmenter are safe. Raises ValueError for a batch that isn't NHWC uint8.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"augment_batch expects an NHWC uint8 batch, got shape {images.shape} dtype {images.dtype}")
    if augmenter is None:
        return images
    seeded = augmenter.deepcopy()  # a private random state: the shared augmenter is never mutated
    seeded.seed_(int(seed) % 2**63)
    augmented = seeded.augment_images(images)
    result = np.ascontiguousarray(np.stack(augmented) if isinstance(augmented, list) else augmented)
    if result.shape != images.shape or result.dtype != np.uint8:
        raise ValueError(f"augmenter changed the batch from {images.shape} uint8 to {result.shape} {result.dtype}")
    return result


def dihedral(images: np.ndarray, index: int) -> np.ndarray:
    """View ``index`` (0..7) of the dihedral group on an NHWC batch: rotate 90 degrees ``index % 4``
    times counter-clockwise, then flip left-right when ``index >= 4``. Returns a NumPy view (no copy).
    """
    if not 0 <= index < DIHEDRAL_VIEWS:
        raise ValueError(f"dihedral view index {index} outside 0..{DIHEDRAL_VIEWS - 1}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"dihedral expects an NHWC batch, got shape {images.shape}")
    view = np.rot90(images, k=index % 4, axes=(1, 2))
    return view[:, :, ::-1] if index >= 4 else view

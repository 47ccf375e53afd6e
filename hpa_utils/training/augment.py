"""Augmentation names and the imgaug part of "strong". The dihedral group (the 8 rotations by 90 degrees and
flips, for training and TTA) is TensorFlow's: ``inputs.dihedral_tf`` and ``inputs.random_dihedral``."""

from __future__ import annotations

import numpy as np

from hpa_utils import errors


def _numpy1_sctypes() -> dict[str, list[type]]:
    """``np.sctypes`` as NumPy 1.x defined it (sized scalar types by kind, no duplicates)."""
    floats = [np.float16, np.float32, np.float64]
    complexes = [np.complex64, np.complex128]
    if np.dtype(np.longdouble).itemsize > np.dtype(np.float64).itemsize:  # float128 / complex256
        floats.append(np.longdouble)
        complexes.append(np.clongdouble)
    return {
        "int": [np.int8, np.int16, np.int32, np.int64],
        "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
        "float": floats,
        "complex": complexes,
        "others": [bool, object, bytes, str, np.void],
    }


def patch_numpy_for_imgaug() -> list[str]:
    """Restore ``np.sctypes`` and ``np.complex`` where they are missing (NumPy >= 2); idempotent.

    imgaug 0.4.0 reads ``np.sctypes`` at import and uses ``np.complex`` in its frequency-noise
    parameters; no other removed name is used by it. Nothing is changed on NumPy 1, and a second
    call changes nothing. Returns the names that this call added.
    """
    added = []
    if not hasattr(np, "sctypes"):
        np.sctypes = _numpy1_sctypes()
        added.append("sctypes")
    if not hasattr(np, "complex"):
        np.complex = complex
        added.append("complex")
    return added


AUGMENTATIONS = ("none", "dihedral", "strong")
DIHEDRAL_VIEWS = 8
# View index -> (swap the two image axes first?, image axes to reverse then): the 8 views of the dihedral group
# (index % 4 turns counter-clockwise, then a left-right mirror from 4 on), each in at most two passes over the
# pixels. The one definition: ``inputs.dihedral_tf`` applies it in the input pipeline, ``predict.dihedral`` in
# the model.
DIHEDRAL_STEPS = (
    (False, ()),
    (True, (0,)),
    (False, (0, 1)),
    (True, (1,)),
    (False, (1,)),
    (True, (0, 1)),
    (False, (0,)),
    (True, ()),
)


def check_augmentation(name: str) -> str:
    """``name`` when it is one of AUGMENTATIONS; ValueError listing them otherwise."""
    if name not in AUGMENTATIONS:
        raise errors.InputError(f"unknown augmentation {name!r}; expected one of {', '.join(AUGMENTATIONS)}")
    return name


def imgaug_augmenters():
    """``imgaug.augmenters``, imported after the NumPy 2 compatibility step (the one place it runs).

    Where imgaug is not installed (a Kaggle image without it) it comes from the hpa-utils dataset's wheel.
    """
    from hpa_utils.system import offline_wheels

    patch_numpy_for_imgaug()
    return offline_wheels.import_module("imgaug.augmenters")


def imgaug_augmenter(name: str):
    """The part of augmentation ``name`` (one of AUGMENTATIONS) that imgaug does; None where there is none.

    "none": nothing. "dihedral": one of the 8 rotations/flips per image, drawn in TensorFlow
    (``inputs.random_dihedral``): None here. "strong": that dihedral view, then this augmenter: a mild
    affine (scale 0.9-1.1, shift up to 5%, rotate up to 10 degrees), per-channel brightness 0.8-1.2 and,
    half of the time, a light Gaussian blur. ``inputs.augment_images`` applies the two in that order.
    Raises ValueError for an unknown name.
    """
    if check_augmentation(name) != "strong":
        return None
    iaa = imgaug_augmenters()
    return iaa.Sequential(
        [
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
        raise errors.InputError(
            f"augment_batch expects an NHWC uint8 batch, got shape {images.shape} dtype {images.dtype}"
        )
    if augmenter is None:
        return images
    seeded = augmenter.deepcopy()  # a private random state: the shared augmenter is never mutated
    seeded.seed_(int(seed) % 2**63)
    augmented = seeded.augment_images(images)
    result = np.ascontiguousarray(np.stack(augmented) if isinstance(augmented, list) else augmented)
    if result.shape != images.shape or result.dtype != np.uint8:
        raise errors.InputError(
            f"augmenter changed the batch from {images.shape} uint8 to {result.shape} {result.dtype}"
        )
    return result

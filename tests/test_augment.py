"""Augmentation names and imgaug's part of "strong" (shape, dtype, determinism); the dihedral group is
TensorFlow's and is tested in test_inputs.py and test_predict.py."""

import numpy as np
import pytest

from hpa_utils import errors
from hpa_utils.training import augment


def test_unknown_augmentation_lists_the_valid_names():
    with pytest.raises(errors.InputError, match="none, dihedral, strong"):
        augment.imgaug_augmenter("heavy")
    with pytest.raises(errors.InputError, match="none, dihedral, strong"):
        augment.check_augmentation("flips")
    assert [augment.check_augmentation(name) for name in augment.AUGMENTATIONS] == ["none", "dihedral", "strong"]


def test_only_strong_has_an_imgaug_part_and_none_leaves_the_batch_unchanged():
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 4), dtype=np.uint8)
    assert augment.imgaug_augmenter("none") is None
    assert augment.imgaug_augmenter("dihedral") is None  # its views are drawn in TensorFlow (inputs.random_dihedral)
    strong = augment.imgaug_augmenter("strong")
    parts = [type(part).__name__ for part in strong]
    assert parts == ["Affine", "Multiply", "Sometimes"] and type(strong[2].then_list[0]).__name__ == "GaussianBlur"
    assert augment.augment_batch(images, None, seed=0) is images


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("image_size", [32, 48])
def test_strong_keeps_shape_and_dtype(channels, image_size):
    augmenter = augment.imgaug_augmenter("strong")
    images = np.random.default_rng(0).integers(0, 256, (3, image_size, image_size, channels), dtype=np.uint8)
    result = augment.augment_batch(images, augmenter, seed=1)
    assert result.shape == images.shape and result.dtype == np.uint8 and result.flags.c_contiguous
    for before, after in zip(images, result):  # a mild transform of this image: changed, its brightness about kept
        assert not np.array_equal(before, after)
        assert 0.6 * before.mean() < after.mean() < 1.3 * before.mean()


def test_augment_batch_is_deterministic_per_seed_and_leaves_augmenter_untouched():
    augmenter = augment.imgaug_augmenter("strong")
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 4), dtype=np.uint8)
    first = augment.augment_batch(images, augmenter, seed=7)
    augment.augment_batch(images, augmenter, seed=8)
    assert np.array_equal(first, augment.augment_batch(images, augmenter, seed=7))
    assert not np.array_equal(first, augment.augment_batch(images, augmenter, seed=9))


def test_strongs_imgaug_part_changes_every_image():
    augmenter = augment.imgaug_augmenter("strong")
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 4), dtype=np.uint8)
    result = augment.augment_batch(images, augmenter, seed=3)
    assert result.dtype == np.uint8
    assert not any(np.array_equal(augmented, original) for augmented, original in zip(result, images))


def test_augment_batch_rejects_non_uint8():
    with pytest.raises(errors.InputError, match="NHWC uint8"):
        augment.augment_batch(np.zeros((2, 8, 8, 3), np.float32), augment.imgaug_augmenter("strong"), seed=0)

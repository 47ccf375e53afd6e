"""imgaug pipelines by name and the 8 dihedral views (shape, dtype, coverage of the group)."""

import numpy as np
import pytest

from hpa_utils import augment


def asymmetric_batch(batch_size, image_size, channels):
    """Images with no rotational or mirror symmetry: every pixel value differs."""
    values = np.arange(image_size * image_size * channels) % 251
    image = values.reshape(image_size, image_size, channels).astype(np.uint8)
    image[0, 0, :] = 255  # a unique corner
    return np.stack([image] * batch_size)


def numpy_views(images):
    return [np.ascontiguousarray(augment.dihedral(images, index)) for index in range(augment.DIHEDRAL_VIEWS)]


def test_unknown_augmentation_lists_the_valid_names():
    with pytest.raises(ValueError, match="none, dihedral, strong"):
        augment.build_augmenter("heavy")


def test_none_returns_the_batch_unchanged():
    images = asymmetric_batch(2, 16, 4)
    assert augment.build_augmenter("none") is None
    assert augment.augment_batch(images, None, seed=0) is images


@pytest.mark.parametrize("name", ["dihedral", "strong"])
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("image_size", [32, 48])
def test_augmentation_keeps_shape_and_dtype(name, channels, image_size):
    augmenter = augment.build_augmenter(name)
    images = np.random.default_rng(0).integers(0, 256, (3, image_size, image_size, channels), dtype=np.uint8)
    result = augment.augment_batch(images, augmenter, seed=1)
    assert result.shape == images.shape
    assert result.dtype == np.uint8
    assert result.flags.c_contiguous


def test_numpy_dihedral_views_are_the_8_distinct_transforms():
    images = asymmetric_batch(1, 8, 4)
    views = numpy_views(images)
    assert len({view.tobytes() for view in views}) == 8
    assert np.array_equal(views[0], images)
    assert np.array_equal(views[1][0], np.rot90(images[0]))
    assert np.array_equal(views[4][0], np.fliplr(images[0]))
    assert all(view.dtype == np.uint8 and view.shape == images.shape for view in views)
    with pytest.raises(ValueError, match="outside 0..7"):
        augment.dihedral(images, 8)


def test_dihedral_augmenter_produces_each_of_the_8_views():
    images = asymmetric_batch(1, 8, 4)
    views = [view.tobytes() for view in numpy_views(images)]
    augmenter = augment.build_augmenter("dihedral")
    seen = [views.index(augment.augment_batch(images, augmenter, seed).tobytes()) for seed in range(200)]
    assert set(seen) == set(range(8))  # every output is one of the views, and every view occurs
    assert min(np.bincount(seen)) > 5  # roughly uniform (expected 25 each)


def test_augment_batch_is_deterministic_per_seed_and_leaves_augmenter_untouched():
    augmenter = augment.build_augmenter("strong")
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 4), dtype=np.uint8)
    first = augment.augment_batch(images, augmenter, seed=7)
    augment.augment_batch(images, augmenter, seed=8)
    assert np.array_equal(first, augment.augment_batch(images, augmenter, seed=7))
    assert not np.array_equal(first, augment.augment_batch(images, augmenter, seed=9))


def test_strong_changes_pixel_values_and_keeps_dtype():
    augmenter = augment.build_augmenter("strong")
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 4), dtype=np.uint8)
    views = numpy_views(images)
    result = augment.augment_batch(images, augmenter, seed=3)
    assert result.dtype == np.uint8
    for index in range(4):  # not merely a rotation or flip of the input
        assert not any(np.array_equal(result[index], view[index]) for view in views)


def test_augment_batch_rejects_non_uint8():
    with pytest.raises(ValueError, match="NHWC uint8"):
        augment.augment_batch(np.zeros((2, 8, 8, 3), np.float32), augment.build_augmenter("dihedral"), seed=0)

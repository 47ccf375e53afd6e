"""tf.data input pipelines: uint8 batches gathered from an (memory-mapped) image array, augmented in parallel."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from hpa_utils import augment


def steps(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches per epoch for ``n`` samples (the last partial batch counts unless ``drop_remainder``)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def _checked(images, targets, batch_size: int, indices):
    """``targets`` as float32 and ``indices`` as int64 rows; ValueError for mismatched or badly typed inputs."""
    if not hasattr(images, "shape") or len(images.shape) != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be an (N, H, W, C) uint8 array, got {getattr(images, 'shape', type(images))} "
            f"{getattr(images, 'dtype', '')}"
        )
    count = images.shape[0]
    if count == 0:
        raise ValueError("images is empty")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if targets is not None:
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim != 2 or len(targets) != count:
            raise ValueError(f"targets must be (N, K) with N = {count} images, got shape {targets.shape}")
    indices = np.asarray(np.arange(count) if indices is None else indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0 or indices.min() < 0 or indices.max() >= count:
        raise ValueError(f"indices must be a non-empty 1-D array of rows 0..{count - 1}")
    return targets, indices


def _gather_op(images, targets, image_shape, batch_dimension):
    """The tf.data map that turns a batch of row indices into the images (and targets) of those rows."""

    def gather(indices):
        indices = np.asarray(indices)
        batch = np.ascontiguousarray(images[indices])
        if targets is None:
            return batch
        return batch, targets[indices]

    def gather_op(indices):
        if targets is None:
            batch = tf.numpy_function(gather, [indices], tf.uint8, stateful=False)
            batch.set_shape(image_shape)
            return batch
        batch, batch_targets = tf.numpy_function(gather, [indices], (tf.uint8, tf.float32), stateful=False)
        batch.set_shape(image_shape)
        batch_targets.set_shape((batch_dimension, targets.shape[1]))
        return batch, batch_targets

    return gather_op


def make_dataset(
    images,
    targets=None,
    batch_size: int = 32,
    shuffle: bool = False,
    augmentation: str = "none",
    seed: int = 0,
    drop_remainder: bool = False,
    indices=None,
) -> tf.data.Dataset:
    """A tf.data.Dataset of uint8 NHWC batches (with float32 targets when ``targets`` is given).

    ``images``: (N, H, W, C) uint8 array, typically the read-only memmap of ``cache.build_cache``;
    batches are gathered from it by index, so it is never loaded whole. ``targets``: (N, K) multi-hot.
    ``shuffle`` reorders the samples every epoch (deterministically from ``seed``); ``augmentation``
    is one of ``augment.AUGMENTATIONS``, applied per batch on parallel workers, with a random state
    drawn from ``seed`` per epoch and batch. ``indices`` limits the dataset to those rows of ``images`` and
    ``targets`` (a training or validation part) without copying them. Raises ValueError for mismatched or badly
    typed inputs.
    """
    targets, indices = _checked(images, targets, batch_size, indices)
    augmenter = augment.build_augmenter(augmentation)  # ValueError for an unknown name, before any work
    batch_dimension = batch_size if drop_remainder else None
    image_shape = (batch_dimension, *images.shape[1:])
    gather_op = _gather_op(images, targets, image_shape, batch_dimension)

    def augment_op(batch_seed, element):
        batch = element[0] if targets is not None else element
        augmented = tf.numpy_function(
            lambda batch_, seed_: augment.augment_batch(batch_, augmenter, int(seed_)),
            [batch, batch_seed],
            tf.uint8,
            stateful=False,
        )
        augmented.set_shape(image_shape)
        return (augmented, element[1]) if targets is not None else augmented

    dataset = tf.data.Dataset.from_tensor_slices(indices)
    if shuffle:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(gather_op, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        # One random seed per batch, a new sequence each epoch, the same sequences for the same seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(seeds, dataset).map(augment_op, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)

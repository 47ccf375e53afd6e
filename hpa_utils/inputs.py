"""tf.data input pipelines: uint8 batches gathered from an (memory-mapped) image array, augmented in parallel."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from hpa_utils import augment, checks
from hpa_utils.augment import DIHEDRAL_VIEWS

# View index -> (swap the two image axes first?, image axes to reverse then): augment.dihedral's 8 views,
# each in at most two passes over the pixels.
_DIHEDRAL_STEPS = (
    (False, ()),
    (True, (0,)),
    (False, (0, 1)),
    (True, (1,)),
    (False, (1,)),
    (True, (0, 1)),
    (False, (0,)),
    (True, ()),
)


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


def dihedral_tf(batch, index: int) -> tf.Tensor:
    """View ``index`` (0..7) of an NHWC (or HWC) batch: rotate 90 degrees counter-clockwise ``index % 4``
    times, then mirror left-right when ``index >= 4``. Same views as ``augment.dihedral``, in TensorFlow.
    """
    if not checks.is_integer(index) or not 0 <= index < DIHEDRAL_VIEWS:
        raise ValueError(f"dihedral index must be an integer in 0..{DIHEDRAL_VIEWS - 1}, got {index!r}")
    batch = tf.convert_to_tensor(batch)
    if batch.shape.rank not in (3, 4):
        raise ValueError(f"expected an HWC image or an NHWC batch, got shape {tuple(batch.shape)}")
    first = batch.shape.rank - 3  # the height axis
    swap, reversed_axes = _DIHEDRAL_STEPS[int(index)]
    if swap:
        order = list(range(batch.shape.rank))
        order[first], order[first + 1] = order[first + 1], order[first]
        batch = tf.transpose(batch, order)
    return tf.reverse(batch, [first + axis for axis in reversed_axes]) if reversed_axes else batch


def random_dihedral(batch, seed) -> tf.Tensor:
    """Each image of an NHWC batch of square images as one of the 8 dihedral views (``dihedral_tf``), drawn
    uniformly and independently per image from the stateless ``seed`` (shape [2]; the same seed, the same views).
    """
    batch = tf.convert_to_tensor(batch)
    views = tf.random.stateless_uniform(tf.shape(batch)[:1], seed=seed, minval=0, maxval=DIHEDRAL_VIEWS, dtype=tf.int32)
    positions = tf.dynamic_partition(tf.range(tf.shape(batch)[0]), views, DIHEDRAL_VIEWS)
    parts = tf.dynamic_partition(batch, views, DIHEDRAL_VIEWS)  # each view's images, turned together
    turned = tf.dynamic_stitch(positions, [dihedral_tf(part, index) for index, part in enumerate(parts)])
    return tf.ensure_shape(turned, batch.shape)


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
    replicas: int = 1,
) -> tf.data.Dataset:
    """A tf.data.Dataset of uint8 NHWC batches (with float32 targets when ``targets`` is given).

    ``images``: (N, H, W, C) uint8 array, typically the read-only memmap of ``cache.build_cache``;
    batches are gathered from it by index, so it is never loaded whole. ``targets``: (N, K) multi-hot.
    ``shuffle`` reorders the samples every epoch (deterministically from ``seed``); ``augmentation``
    is one of ``augment.AUGMENTATIONS``, applied per batch on parallel workers, with a random state
    drawn from ``seed`` per epoch and batch: "dihedral" in the graph (``random_dihedral``, square images
    only), "strong" by imgaug. ``indices`` limits the dataset to those rows of ``images`` and
    ``targets`` (a training or validation part) without copying them. Raises ValueError for mismatched or badly
    typed inputs.
    ``replicas``: the strategy's replica count. Keras (3.15) builds a distributed model from the first batch
    averaged over the replicas, which fails when they got unequal parts of it; so where all images fit in
    one batch that does not split evenly, the first batch is cut to a multiple of ``replicas`` and the rest
    follows in a second one.
    """
    targets, indices = _checked(images, targets, batch_size, indices)
    if len(indices) < batch_size and len(indices) % replicas:
        batch_size = max(replicas, len(indices) - len(indices) % replicas)
    # ValueError for an unknown name, before any work; "dihedral" runs in the graph, without imgaug
    augmenter = None if augmentation == "dihedral" else augment.build_augmenter(augmentation)
    if augmentation == "dihedral" and images.shape[1] != images.shape[2]:
        raise ValueError(f"dihedral augmentation turns images by 90 degrees: needs square images, got {images.shape}")
    batch_dimension = batch_size if drop_remainder else None
    image_shape = (batch_dimension, *images.shape[1:])
    gather_op = _gather_op(images, targets, image_shape, batch_dimension)

    def augment_op(batch_seed, element):
        batch = element[0] if targets is not None else element
        if augmentation == "dihedral":  # one view per image, from a stateless seed of this epoch and batch
            augmented = random_dihedral(batch, tf.stack([batch_seed, tf.constant(0, tf.int64)]))
        else:
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
    if augmentation != "none":
        # One random seed per batch, a new sequence each epoch, the same sequences for the same seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(seeds, dataset).map(augment_op, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)

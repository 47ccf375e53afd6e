"""tf.data input pipelines: uint8 batches gathered from an (memory-mapped) image array, augmented in parallel;
the dihedral group (the 8 rotations by 90 degrees and flips) for training and TTA."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hpa_utils import errors
from hpa_utils.training import augment
from hpa_utils.training.augment import DIHEDRAL_VIEWS


def _checked(images, targets, batch_size: int, indices):
    """``targets`` as float32 and ``indices`` as int64 rows; ValueError for mismatched or badly typed inputs."""
    if not hasattr(images, "shape") or len(images.shape) != 4 or images.dtype != np.uint8:
        raise errors.InputError(
            f"images must be an (N, H, W, C) uint8 array, got {getattr(images, 'shape', type(images))} "
            f"{getattr(images, 'dtype', '')}"
        )
    count = images.shape[0]
    if count == 0:
        raise errors.InputError("images is empty")
    if batch_size <= 0:
        raise errors.InputError(f"batch_size must be positive, got {batch_size}")
    if targets is not None:
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim != 2 or len(targets) != count:
            raise errors.InputError(f"targets must be (N, K) with N = {count} images, got shape {targets.shape}")
    indices = np.asarray(np.arange(count) if indices is None else indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0 or indices.min() < 0 or indices.max() >= count:
        raise errors.InputError(f"indices must be a non-empty 1-D array of rows 0..{count - 1}")
    return targets, indices


def dihedral_tf(batch, index: int) -> tf.Tensor:
    """View ``index`` (0..7) of an NHWC (or HWC) batch: rotate 90 degrees counter-clockwise ``index % 4``
    times, then mirror left-right when ``index >= 4`` (``np.rot90(batch, index % 4, axes=(1, 2))``, then
    ``[:, :, ::-1]``). The one definition of the dihedral group: training (``random_dihedral``) and TTA
    (``predict.predict_tta``) both use it.
    """
    if not errors.is_integer(index) or not 0 <= index < DIHEDRAL_VIEWS:
        raise errors.InputError(f"dihedral index must be an integer in 0..{DIHEDRAL_VIEWS - 1}, got {index!r}")
    batch = tf.convert_to_tensor(batch)
    if batch.shape.rank not in (3, 4):
        raise errors.InputError(f"expected an HWC image or an NHWC batch, got shape {tuple(batch.shape)}")
    first = batch.shape.rank - 3  # the height axis
    swap, reversed_axes = augment.DIHEDRAL_STEPS[int(index)]
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


def _check_square(shape, augmentation: str) -> None:
    """ValueError where ``augmentation`` turns images (anything but "none") and ``shape`` (…, H, W, C) is not square."""
    height, width = shape[-3], shape[-2]
    if augmentation != "none" and height is not None and width is not None and height != width:
        raise errors.InputError(
            f"{augmentation} augmentation turns images by 90 degrees: needs square images, got {tuple(shape)}"
        )


def views_of(image, augmentation: str, draws: int = 8, seed: int = 0) -> np.ndarray:
    """``draws`` training views of one HWC uint8 image: ``augment_images`` of the image repeated, as the training
    pipeline draws them (``plots.augmentation_examples`` shows them)."""
    return np.asarray(augment_images(np.repeat(np.asarray(image)[None], draws, axis=0), augmentation, seed))


def augment_images(batch, augmentation: str, seed) -> tf.Tensor:
    """The training views of an NHWC uint8 batch for ``augmentation`` (one of ``augment.AUGMENTATIONS``): what
    ``make_dataset`` maps over every batch (``views_of``: one image's).

    "none": the batch itself. "dihedral": each image as one of the 8 views of ``dihedral_tf``, drawn by
    ``random_dihedral`` in the graph. "strong": those views, then ``augment.imgaug_augmenter("strong")``
    (affine, brightness, blur) by imgaug in a ``tf.numpy_function``. ``seed``: an integer (a Python int or
    an int64 scalar tensor); the same batch and seed, the same result. Raises ValueError for an unknown
    name or, unless "none", images that are not square.
    """
    augment.check_augmentation(augmentation)
    batch = tf.convert_to_tensor(batch)
    if augmentation == "none":
        return batch
    _check_square(batch.shape, augmentation)
    seed = tf.cast(seed, tf.int64)
    turned = random_dihedral(batch, tf.stack([seed, tf.constant(0, tf.int64)]))
    augmenter = augment.imgaug_augmenter(augmentation)
    if augmenter is None:
        return turned
    augmented = tf.numpy_function(
        lambda batch_, seed_: augment.augment_batch(batch_, augmenter, int(seed_)),
        [turned, seed],
        tf.uint8,
        stateful=False,
    )
    augmented.set_shape(batch.shape)
    return augmented


def _gather_op(images, targets):
    """The tf.data map that turns a batch of row indices into the images (and targets) of those rows."""
    image_shape = (None, *images.shape[1:])

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
        batch_targets.set_shape((None, targets.shape[1]))
        return batch, batch_targets

    return gather_op


def batch_sizes(count: int, batch_size: int, replicas: int = 1) -> list[int]:
    """The sizes of one epoch's batches of ``count`` images: full batches, then the rest. Two rules shape them
    on several replicas. Keras (3.15) builds a distributed model from the first batch averaged over the
    replicas, which fails when they got unequal parts of it: a set smaller than a batch starts with a multiple
    of ``replicas``. TensorFlow's oneDNN CPU kernels refuse an empty batch: a rest smaller than ``replicas``
    takes ``replicas`` images from the batch before it, or joins it where that batch has no more to give."""
    if count < batch_size and count % replicas:
        batch_size = max(replicas, count - count % replicas)
    full, rest = divmod(count, batch_size)
    sizes = [batch_size] * full + ([rest] if rest else [])
    if 0 < rest < replicas and full:
        if batch_size >= 2 * replicas:
            sizes[-2:] = [batch_size - replicas, replicas + rest]
        else:
            sizes[-2:] = [batch_size + rest]
    return sizes


def _even_batches(images, targets, batch_size, shuffle, augmentation, seed, indices, replicas) -> tf.data.Dataset:
    """``make_dataset`` under Keras' JAX backend on several devices, which shards every batch evenly over them.
    Every batch has one shape, so JAX compiles each step once (a new shape is a new compilation, tens of seconds on
    a TPU). Training (``shuffle``): each epoch the last shuffled images that do not fill a batch sit out, other
    ones each epoch (a set smaller than a batch is one batch, a multiple of the devices). Held-out rows: the last
    batch is filled with copies of a row of sample weight 0, so every image counts once in the validation loss and
    F1 and the padding not at all; batches are (images, targets, weights).
    """
    gather_op = _gather_op(images, targets)
    whole = batch_size if len(indices) >= batch_size else replicas  # what every batch's size is a multiple of
    if shuffle:
        usable = len(indices) - len(indices) % whole
        dataset = tf.data.Dataset.from_tensor_slices(indices).shuffle(len(indices), seed=seed)
        dataset = dataset.take(usable).batch(batch_size).map(gather_op, num_parallel_calls=tf.data.AUTOTUNE)
        if augmentation != "none":
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
            dataset = tf.data.Dataset.zip(seeds, dataset).map(
                lambda batch_seed, element: (augment_images(element[0], augmentation, batch_seed), element[1]),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return dataset.prefetch(tf.data.AUTOTUNE)
    padding = -len(indices) % whole
    padded = np.concatenate([indices, np.full(padding, indices[0], indices.dtype)]) if padding else indices
    weights = np.concatenate([np.ones(len(indices), np.float32), np.zeros(padding, np.float32)])
    dataset = tf.data.Dataset.from_tensor_slices((padded, weights)).batch(batch_size)
    dataset = dataset.map(lambda rows, weight: (*gather_op(rows), weight), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(
    images,
    targets=None,
    batch_size: int = 32,
    shuffle: bool = False,
    augmentation: str = "none",
    seed: int = 0,
    indices=None,
    replicas: int = 1,
) -> tf.data.Dataset:
    """A tf.data.Dataset of uint8 NHWC batches (with float32 targets when ``targets`` is given).

    ``images``: (N, H, W, C) uint8 array, typically the read-only memmap of ``cache.build_cache``;
    batches are gathered from it by index, so it is never loaded whole. ``targets``: (N, K) multi-hot.
    ``shuffle`` reorders the samples every epoch (deterministically from ``seed``); ``augmentation``
    is one of ``augment.AUGMENTATIONS``, applied per batch by ``augment_images`` on parallel workers, with a
    random state drawn from ``seed`` per epoch and batch: the dihedral view in the graph (``random_dihedral``,
    square images only), for "strong" then imgaug's affine, brightness and blur. ``indices`` limits the dataset
    to those rows of ``images`` and ``targets`` (a training or validation part) without copying them. Raises
    ValueError for mismatched or badly typed inputs.
    ``replicas``: the strategy's replica count; the batches are shaped for it as ``batch_sizes`` says. Every image
    is in one batch: none is dropped.
    """
    targets, indices = _checked(images, targets, batch_size, indices)
    augment.check_augmentation(augmentation)  # ValueError for an unknown name, before any work
    _check_square(images.shape, augmentation)
    if keras.backend.backend() == "jax" and replicas > 1 and targets is not None:  # every batch split evenly
        return _even_batches(images, targets, batch_size, shuffle, augmentation, seed, indices, replicas)
    gather_op = _gather_op(images, targets)

    def augment_op(batch_seed, element):  # the views of this epoch and batch, from its seed
        if targets is None:
            return augment_images(element, augmentation, batch_seed)
        return augment_images(element[0], augmentation, batch_seed), element[1]

    dataset = tf.data.Dataset.from_tensor_slices(indices)
    if shuffle:
        dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    sizes = batch_sizes(len(indices), batch_size, replicas)
    if sizes != batch_sizes(len(indices), batch_size):  # shaped for the replicas
        dataset = dataset.rebatch(sizes).apply(tf.data.experimental.assert_cardinality(len(sizes)))
    dataset = dataset.map(gather_op, num_parallel_calls=tf.data.AUTOTUNE)
    if augmentation != "none":
        # One random seed per batch, a new sequence each epoch, the same sequences for the same seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(seeds, dataset).map(augment_op, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)

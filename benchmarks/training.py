"""Augmentation and training: imgaug's cost per image, and what our input pipeline adds to an epoch."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Row, Settings, Variant, backbone_label, log, timed, timed_in_turns
from hpa_utils import dataset
from hpa_utils.dataset import cache, labels
from hpa_utils.training import augment, inputs


@dataclasses.dataclass
class AugmentationContext:
    settings: Settings
    augmenters: dict
    images: dict  # "model size" / "full size" -> a batch of rgby uint8 images
    in_graph: object = None  # inputs.random_dihedral as a traced tf.function
    tensors: dict = dataclasses.field(default_factory=dict)  # the images as tf tensors, as in the pipeline


def imgaug_dihedral():
    """The way before: imgaug drawing one of the 8 dihedral views per image (``np.rot90`` counter-clockwise turns,
    then a left-right flip for views 4-7), as the package did until the group became TensorFlow's alone. Kept here
    as the baseline the in-graph dihedral is measured against."""
    iaa = augment.imgaug_augmenters()
    views = []
    for index in range(augment.DIHEDRAL_VIEWS):
        steps = [iaa.Rot90((-index) % 4, keep_size=True)]  # imgaug's Rot90 turns clockwise
        if index >= 4:
            steps.append(iaa.Fliplr(1.0))
        views.append(iaa.Sequential(steps, name=f"dihedral_{index}"))
    return iaa.OneOf(views, name="dihedral")


def _augmentation(name: str, size: str) -> Variant:
    def run(context: AugmentationContext) -> float:
        return timed(
            lambda: [
                augment.augment_batch(context.images[size], context.augmenters[name], seed=seed)
                for seed in range(context.settings.augment_calls)
            ]
        )

    def detail(context: AugmentationContext, best: dict, row: str) -> str:
        side = context.images[size].shape[1]
        what = "imgaug's dihedral (the way before)" if name == "dihedral" else "imgaug's part of strong"
        return f"{what}, {side} px rgby uint8, batches of {len(context.images[size])}, 1 thread"

    return Variant(f"{name}, {size}", run, detail)


def _in_graph(size: str) -> Variant:
    def run(context: AugmentationContext) -> float:
        images = context.tensors[size]
        return timed(lambda: [context.in_graph(images, [seed, 0]) for seed in range(context.settings.augment_calls)])

    def detail(context: AugmentationContext, best: dict, row: str) -> str:
        ratio = best[f"dihedral, {size}"] / best[row]
        return f"ours: inputs.random_dihedral (tf), {ratio:.1f}x faster than imgaug's dihedral"

    return Variant(f"dihedral in the graph, {size}", run, detail)


AUGMENTATIONS = tuple(
    _augmentation(name, size) for name in ("dihedral", "strong") for size in ("model size", "full size")
) + tuple(_in_graph(size) for size in ("model size", "full size"))


def measure_augmentation(settings: Settings, data_dir: Path, ids: list[str]) -> list[Row]:
    """ms per image of augment_batch for "dihedral" and "strong" and of the in-graph dihedral, at the model size
    and the full size."""
    import tensorflow as tf

    count = settings.augment_batch
    full = np.stack([dataset.load_sample(data_dir, "train", ids[index % len(ids)], "rgby") for index in range(count)])
    size = (settings.load_size, settings.load_size)
    small = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in full])
    log(f"augmentation: batches of {count} rgby images at {settings.load_size} and {settings.source_size} px")
    augmenters = {"dihedral": imgaug_dihedral(), "strong": augment.imgaug_augmenter("strong")}
    for augmenter in augmenters.values():  # first calls pay imgaug's imports and caches
        augment.augment_batch(small, augmenter, seed=0)
    signature = [tf.TensorSpec((None, None, None, 4), tf.uint8), tf.TensorSpec((2,), tf.int64)]
    in_graph = tf.function(inputs.random_dihedral, input_signature=signature)
    images = {"model size": small, "full size": full}
    tensors = {name: tf.constant(batch) for name, batch in images.items()}
    in_graph(tensors["model size"], [0, 0])  # traced once, outside the timing
    context = AugmentationContext(settings, augmenters, images, in_graph, tensors)
    best = timed_in_turns(AUGMENTATIONS, context, settings.repeats)
    return [
        Row(
            variant.name,
            1000 * best[variant.name] / (settings.augment_calls * count),
            "ms/image",
            "",
            variant.describe(context, best),
        )
        for variant in AUGMENTATIONS
    ]


def build_small_model(settings: Settings):
    """The model the training and prediction sections share (``settings.backbone``, ResNet50 by default; rgby,
    weights none, at ``train_size``)."""
    from hpa_utils import models
    from hpa_utils.training import fitting

    model = models.build_model(settings.backbone, settings.train_size, "rgby", "none")
    return fitting.compile_model(model, learning_rate=1e-4)


@dataclasses.dataclass
class FeedContext:
    images: np.ndarray
    targets: np.ndarray
    count: int
    batch_size: int


def _from_memory(context: FeedContext):
    import tensorflow as tf

    pairs = (np.array(context.images[: context.count]), context.targets[: context.count])
    return tf.data.Dataset.from_tensor_slices(pairs).batch(context.batch_size).prefetch(tf.data.AUTOTUNE)


# The feeds give the same batches (in order, no shuffling); ours adds the dihedral augmentation in one.
# Each feed makes two rows: "epoch <name>" (with the model) and "pipeline alone, <name>" (without).
FEEDS = (
    Variant("from memory", _from_memory),
    Variant(
        "ours, no augmentation",
        lambda c: inputs.make_dataset(c.images, c.targets, c.batch_size, indices=np.arange(c.count)),
    ),
    Variant(
        "ours, dihedral",
        lambda c: inputs.make_dataset(
            c.images, c.targets, c.batch_size, augmentation="dihedral", indices=np.arange(c.count)
        ),
    ),
)


def _imgaug_dihedral(context: FeedContext):
    """The way before: make_dataset's batches, then imgaug's dihedral augmenter in a tf.numpy_function."""
    import tensorflow as tf

    augmenter = imgaug_dihedral()

    def augment_op(seed, element):
        batch, batch_targets = element
        augmented = tf.numpy_function(
            lambda images, seed_: augment.augment_batch(images, augmenter, int(seed_)), [batch, seed], tf.uint8
        )
        augmented.set_shape(batch.shape)
        return augmented, batch_targets

    batches = inputs.make_dataset(context.images, context.targets, context.batch_size, indices=np.arange(context.count))
    seeds = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(seeds, batches).map(augment_op, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


# Timed without the model only: the alternative to the kept way.
ALONE = (Variant("imgaug dihedral (before)", _imgaug_dihedral),)
TRAINING_ROWS = tuple(f"epoch {feed.name}" for feed in FEEDS) + tuple(
    f"pipeline alone, {feed.name}" for feed in FEEDS + ALONE
)


def _interleaved_steps(feeds: dict, model, settings: Settings) -> tuple[dict, dict]:
    """Seconds and CPU seconds of each train step, one step per feed in turn, the order rotated each time.

    The shared machine's load swings more than the effect measured here from one epoch to the next (a
    step takes 1x or 2x), so it has to fall on every feed alike: an epoch is later its start-up plus
    train_batches median steps (the fastest step is rare and lands on one feed by chance).
    """
    iterators = {name: iter(feed.repeat()) for name, feed in feeds.items()}

    def train_step(name):
        images_batch, targets_batch = next(iterators[name])
        model.train_on_batch(images_batch, targets_batch)

    for name in feeds:  # warm-up: traces the train step, fills each pipeline
        for _ in range(2):
            train_step(name)
    seconds, processor = {name: [] for name in feeds}, {name: [] for name in feeds}
    names = list(feeds)
    for step_index in range(settings.training_repeats * settings.train_batches):
        shift = step_index % len(names)
        for name in names[shift:] + names[:shift]:
            processor_start = time.process_time()
            seconds[name].append(timed(train_step, name))
            processor[name].append(time.process_time() - processor_start)
    return seconds, processor


def _pipelines_alone(feeds: dict, repeats: int) -> tuple[dict, dict]:
    """Each pipeline without a model (a new iterator, all batches): best seconds and CPU seconds per epoch."""
    processor = {name: math.inf for name in feeds}

    def alone(name):
        def run(context):
            processor_start = time.process_time()
            seconds = timed(lambda: [None for _ in feeds[name]])
            processor[name] = min(processor[name], time.process_time() - processor_start)
            return seconds

        return run

    best = timed_in_turns([Variant(name, alone(name)) for name in feeds], None, repeats)
    return best, processor


def measure_training(
    settings: Settings, data_dir: Path, ids: list[str], work_dir: Path, model
) -> tuple[list[Row], float]:
    """One epoch's time fed by make_dataset (memmap, with and without dihedral) vs from memory, and the
    pipelines' own cost without a model. Returns the rows and the overhead (%) with dihedral augmentation.
    """
    count = min(len(ids), settings.batch_size * settings.train_batches)
    images = cache.build_cache(data_dir, "train", ids, settings.train_size, "rgby", cache_dir=work_dir / "training")
    targets = labels.to_multi_hot(dataset.read_train_labels(data_dir)["labels"].tolist(), dtype=np.float32)
    log(
        f"training: {backbone_label(settings.backbone)} {settings.train_size} px rgby, {count} samples in batches of "
        f"{settings.batch_size}"
    )
    context = FeedContext(images, targets, count, settings.batch_size)
    feeds = {feed.name: feed.run(context) for feed in FEEDS}
    startup = timed_in_turns(
        [Variant(name, lambda c, feed=feed: timed(lambda: next(iter(feed)))) for name, feed in feeds.items()],
        None,
        settings.repeats,
    )
    steps, step_processor = _interleaved_steps(feeds, model, settings)
    epoch = {name: startup[name] + settings.train_batches * float(np.median(steps[name])) for name in feeds}
    processor = {name: settings.train_batches * float(np.median(step_processor[name])) for name in feeds}
    memory, memory_processor = epoch["from memory"], processor["from memory"]
    rows = []
    for name in feeds:
        overhead = 100 * (epoch[name] - memory) / memory
        low, median, high = np.percentile(steps[name], [10, 50, 90])
        rows.append(
            Row(
                f"epoch {name}",
                epoch[name],
                "s",
                "baseline" if name == "from memory" else f"{overhead:+.1f} % overhead",
                f"{count / epoch[name]:.1f} images/s; step median {median:.3f} s (p10 {low:.3f}, p90 {high:.3f}, "
                f"{len(steps[name])} steps); start-up {1000 * startup[name]:.0f} ms; "
                f"CPU time {100 * (processor[name] - memory_processor) / memory_processor:+.1f} %",
            )
        )
    feeds |= {feed.name: feed.run(context) for feed in ALONE}
    alone, alone_processor = _pipelines_alone(feeds, 3 * settings.repeats)
    for name in feeds:
        rows.append(
            Row(
                f"pipeline alone, {name}",
                1000 * alone[name],
                "ms/epoch",
                f"{100 * alone[name] / memory:.1f} % of epoch",
                f"CPU time {1000 * alone_processor[name]:.0f} ms = "
                f"{100 * alone_processor[name] / memory_processor:.1f} % of a memory-fed epoch's; "
                "the most it can add when nothing overlaps",
            )
        )
    # the target: the pipeline as training uses it (make_dataset with dihedral augmentation)
    return rows, 100 * (epoch["ours, dihedral"] - memory) / memory

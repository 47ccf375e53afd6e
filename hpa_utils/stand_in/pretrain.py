"""Training a stand-in: the ``small`` backbone on a source task, written as a "notop" file that ``WEIGHTS=FILE``
loads as it would load Keras' ImageNet file, with its provenance beside it.

``python -m hpa_utils pretrain --task structures --out FILE [--images N] [--size PX] [--epochs E] [--seed S]``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import multiprocessing
import os
import time
from pathlib import Path
from typing import Callable

import cv2
import keras
import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from hpa_utils import argument_values, atomic_files, environment, models, training
from hpa_utils.models.backbones import quicken_batch_normalization, small_cnn
from hpa_utils.stand_in import fields, structures

RENDER_SIZE = 256  # every source image is drawn at the demo dataset's side, then shrunk as its cache is
VALIDATION_SHARE = 0.1
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class SourceTask:
    """A source task: what an image is asked (``targets``), how one is drawn, and how the task is scored."""

    name: str
    targets: tuple[str, ...]
    draw: Callable  # (rng, side) -> (image (side, side, 3) uint8, targets float32)
    stream: int  # images come from np.random.default_rng([seed, stream, index]); the datasets' streams are 0-3
    classification: bool  # multi-label classes (sigmoid, cross-entropy, ROC AUC) or regression (MSE, R²)

    @property
    def score_name(self) -> str:
        return "validation ROC AUC" if self.classification else "validation R²"


TASKS = {
    "structures": SourceTask("structures", structures.CLASSES, structures.structures_sample, 10, True),
    "fields": SourceTask("fields", fields.TARGETS, fields.fields_sample, 9, False),
}


def source_sample(task: SourceTask, index: int, seed: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source image ``index`` of ``task`` (image_size, image_size, 3) uint8 (red, green, blue) and its targets."""
    image, targets = task.draw(np.random.default_rng([seed, task.stream, index]), RENDER_SIZE)
    if image_size != RENDER_SIZE:
        image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return image, targets


def _chunk(arguments) -> tuple[np.ndarray, np.ndarray]:
    cv2.setNumThreads(1)
    task_name, indices, seed, image_size = arguments
    pairs = [source_sample(TASKS[task_name], index, seed, image_size) for index in indices]
    return np.stack([image for image, _ in pairs]), np.stack([target for _, target in pairs])


def source_images(task: SourceTask, count: int, seed: int, image_size: int, progress: bool = True):
    """``count`` source images of ``task`` and their targets, drawn on every core."""
    workers = max(1, min(os.cpu_count() or 1, count))
    chunks = [
        (task.name, list(range(start, min(start + 25, count))), seed, image_size) for start in range(0, count, 25)
    ]
    images = np.zeros((count, image_size, image_size, 3), np.uint8)
    targets = np.zeros((count, len(task.targets)), np.float32)
    methods = multiprocessing.get_all_start_methods()  # not "fork": TensorFlow's threads may already run
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with tqdm(total=count, desc=f"{task.name} images", unit="image", disable=not progress) as bar:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for (_, indices, _, _), (chunk_images, chunk_targets) in zip(chunks, pool.map(_chunk, chunks)):
                images[indices], targets[indices] = chunk_images, chunk_targets
                bar.update(len(indices))
    return images, targets


def source_model(task: SourceTask, image_size: int):
    """The ``small`` backbone (from scratch, as ``models.build_model`` builds it) under the same input scaling and
    BatchNormalization, then global average pooling and one output per target."""
    backbone = small_cnn(include_top=False, input_shape=(image_size, image_size, 3))
    quicken_batch_normalization(backbone)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="input_scale")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="input_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="source_pool")(backbone(x))
    activation = "sigmoid" if task.classification else None
    outputs = keras.layers.Dense(len(task.targets), activation, name="source_targets", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"source_task_{task.name}"), backbone


def scores(task: SourceTask, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per target: ROC AUC (classes: 0.5 is chance) or R² = 1 - residual variance / variance (0: the mean's)."""
    if task.classification:
        return np.asarray(roc_auc_score(targets, predictions, average=None))
    residual = np.square(targets - predictions).mean(axis=0)
    return 1.0 - residual / np.maximum(targets.var(axis=0), 1e-12)


def _fit(task: SourceTask, pixels, targets, validation, *, size: int, epochs: int, seed: int, verbose: int):
    """Train the source model; return its backbone and the per-target validation scores."""
    if not task.classification:  # regression targets on one scale
        targets = (targets - targets.mean(axis=0)) / np.maximum(targets.std(axis=0), 1e-6)
    training.set_seed(seed)
    model, backbone = source_model(task, size)
    models.set_input_statistics(model, pixels, np.flatnonzero(~validation))
    loss = "binary_crossentropy" if task.classification else "mse"
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss)
    model.fit(
        pixels[~validation],
        targets[~validation],
        validation_data=(pixels[validation], targets[validation]),
        batch_size=BATCH_SIZE,
        epochs=epochs,
        verbose=verbose,
    )
    predicted = model.predict(pixels[validation], batch_size=BATCH_SIZE, verbose=0)
    return backbone, scores(task, targets[validation], predicted)


def pretrain(
    out,
    *,
    task: str = "structures",
    images: int = 10000,
    size: int = 64,
    epochs: int = 20,
    seed: int = 2026,
    verbose: int = 2,
) -> dict:
    """Train ``task`` and write the backbone's weights to ``out`` (legacy .h5, as Keras' "notop" files) and its
    provenance beside it (``out`` with .json: the command, commit, machine, images, epochs, seconds, and the source
    task's own validation score per target). Returns the provenance."""
    if task not in TASKS:
        raise ValueError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
    images = argument_values.integer("--images", images, minimum=20)
    size = argument_values.integer("--size", size, minimum=16)
    epochs = argument_values.integer("--epochs", epochs, minimum=1)
    out = Path(out)
    if out.name.endswith(".weights.h5") or out.suffix != ".h5":
        raise ValueError(f"--out {out}: a weights file ends in .h5 (not .weights.h5), as Keras' notop files do")
    started, source = time.time(), TASKS[task]
    pixels, targets = source_images(source, images, seed, size)
    validation = np.arange(images) >= round(images * (1 - VALIDATION_SHARE))  # the last tenth
    backbone, measured = _fit(source, pixels, targets, validation, size=size, epochs=epochs, seed=seed, verbose=verbose)
    out.parent.mkdir(parents=True, exist_ok=True)
    models.save_weights(backbone, out)
    provenance = {
        "command": f"python -m hpa_utils pretrain --task {task} --out {out} --images {images} --size {size} "
        f"--epochs {epochs} --seed {seed}",
        "task": task,
        "commit": environment.commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": environment.cpu_description(),
        "images": images,
        "validation_images": int(validation.sum()),
        "image_size": size,
        "rendered_at": RENDER_SIZE,
        "epochs": epochs,
        "seed": seed,
        "seconds": round(time.time() - started),
        "score": source.score_name,
        "validation_scores": {name: round(float(value), 3) for name, value in zip(source.targets, measured)},
        "validation_score_mean": round(float(measured.mean()), 3),
        "backbone": "small",
        "loads_as": f"WEIGHTS={out.name} with BACKBONE=small (models.build_model(..., weights=path))",
    }
    atomic_files.write_json(out.with_suffix(".json"), provenance)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.json')}: {source.score_name} "
        f"{measured.mean():.3f} on average over {len(source.targets)} targets"
    )
    return provenance


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils pretrain`."""
    pretrain(
        arguments.out,
        task=arguments.task,
        images=arguments.images,
        size=arguments.size,
        epochs=arguments.epochs,
        seed=arguments.seed,
    )
    return 0

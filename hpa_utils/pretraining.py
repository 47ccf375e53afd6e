"""A pretrained stand-in for ImageNet weights: the ``small`` backbone trained on a source task that is not the
competition's, written as a "notop" weights file that ``WEIGHTS=FILE`` loads as it would load Keras' ImageNet file.

ImageNet's role in the method is "generic visual features learned on another task, with other labels". The embedded
generator plays it here: each field of view draws properties that are not the 28 protein labels (how many cells, how
much of the field they cover, the nucleus size of the cell line, each stain's brightness with the exposure), and the
source task regresses six of them from the image (``SOURCE_TARGETS``). They carry no label information by
construction: ``synthetic.sample.render_sample_and_field`` draws the field from a random stream that never sees the
labels, before any label is rendered. Left out: the green stain's brightness (the protein's channel, whose
appearance is the label's pattern) and dividing cells (labels 16 and 17 force one into the field). The images come
from other random streams than any dataset's (``STREAM``), so the source images and the demo's are disjoint.

``python -m hpa_utils pretrain --out FILE [--images N] [--size PX] [--epochs E] [--seed S]``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import math
import multiprocessing
import os
import platform
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from hpa_utils import checks, environment, files

SOURCE_TARGETS = (
    "log cell count",
    "coverage",
    "log nucleus size",
    "log red brightness",
    "log blue brightness",
    "log yellow brightness",
)
STREAM = 9  # np.random.default_rng([seed, STREAM, index]): the writer's streams are 0-3, so no dataset shares one
RENDER_SIZE = 256  # rendered as the demo's dataset is, then shrunk to --size as its cache is
VALIDATION_SHARE = 0.1
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


def source_sample(index: int, seed: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One source image (image_size, image_size, 3) uint8 (red, green, blue, as the ``rgb`` cache) and its six
    targets (``SOURCE_TARGETS``)."""
    from hpa_utils.synthetic import render_sample_and_field, sample_label_sets

    rng = np.random.default_rng([seed, STREAM, index])
    label_set = sample_label_sets(1, rng, min_per_class=0)[0]  # real label statistics; never a target
    channels, field = render_sample_and_field(label_set, RENDER_SIZE, rng)
    image = np.stack([channels[color] for color in ("red", "green", "blue")], axis=-1)
    if image_size != RENDER_SIZE:
        image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
    brightness = [math.log(field.gains[color] * field.exposure) for color in ("red", "blue", "yellow")]
    targets = [math.log(field.cell_count), field.coverage, math.log(field.nucleus_scale), *brightness]
    return image, np.asarray(targets, dtype=np.float32)


def _chunk(arguments) -> tuple[np.ndarray, np.ndarray]:
    cv2.setNumThreads(1)
    indices, seed, image_size = arguments
    pairs = [source_sample(index, seed, image_size) for index in indices]
    return np.stack([image for image, _ in pairs]), np.stack([target for _, target in pairs])


def source_images(count: int, seed: int, image_size: int, workers: int | None = None, progress: bool = True):
    """``count`` source images and their targets, rendered on ``workers`` processes (default: every core)."""
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, count))
    chunks = [(list(range(start, min(start + 25, count))), seed, image_size) for start in range(0, count, 25)]
    images = np.zeros((count, image_size, image_size, 3), np.uint8)
    targets = np.zeros((count, len(SOURCE_TARGETS)), np.float32)
    methods = multiprocessing.get_all_start_methods()  # not "fork": TensorFlow's threads may already run
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with tqdm(total=count, desc="source images", unit="image", disable=not progress) as bar:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for (indices, _, _), (chunk_images, chunk_targets) in zip(chunks, pool.map(_chunk, chunks)):
                images[indices], targets[indices] = chunk_images, chunk_targets
                bar.update(len(indices))
    return images, targets


def source_model(image_size: int):
    """The ``small`` backbone (from scratch, as ``models.build_model`` builds it) under the same input scaling and
    BatchNormalization, then global average pooling and one linear output per target."""
    import keras

    from hpa_utils.models.backbones import quicken_batch_normalization, small_cnn

    backbone = small_cnn(include_top=False, input_shape=(image_size, image_size, 3))
    quicken_batch_normalization(backbone)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="input_scale")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="input_bn")(x)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="source_pool")(x)
    outputs = keras.layers.Dense(len(SOURCE_TARGETS), name="source_targets", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="source_task"), backbone


def r_squared(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per target: 1 - residual variance / variance (1 is perfect, 0 is the mean's score)."""
    residual = np.square(targets - predictions).mean(axis=0)
    return 1.0 - residual / np.maximum(targets.var(axis=0), 1e-12)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=environment.REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def _machine() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; the platform's name elsewhere) and its core count."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    except OSError:
        name = ""
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def pretrain(out, *, images: int = 2000, size: int = 64, epochs: int = 15, seed: int = 2026, verbose: int = 2) -> dict:
    """Train the source task and write the backbone's weights to ``out`` (legacy .h5, as Keras' "notop" files) and
    its provenance beside it (``out`` with .json: the command, commit, images, epochs, seconds, and the source task's
    own validation R² per target). Returns the provenance."""
    from hpa_utils import models, training

    images = checks.integer("--images", images, minimum=20)
    size = checks.integer("--size", size, minimum=16)
    epochs = checks.integer("--epochs", epochs, minimum=1)
    out = Path(out)
    if out.name.endswith(".weights.h5") or out.suffix != ".h5":
        raise ValueError(f"--out {out}: a weights file ends in .h5 (not .weights.h5), as Keras' notop files do")
    started = time.time()
    pixels, targets = source_images(images, seed, size)
    mean, spread = targets.mean(axis=0), np.maximum(targets.std(axis=0), 1e-6)
    scaled = (targets - mean) / spread
    validation = np.arange(images) >= round(images * (1 - VALIDATION_SHARE))  # the last tenth
    training.set_seed(seed)
    model, backbone = source_model(size)
    models.set_input_statistics(model, pixels, np.flatnonzero(~validation))
    import keras

    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
    model.fit(
        pixels[~validation],
        scaled[~validation],
        validation_data=(pixels[validation], scaled[validation]),
        batch_size=BATCH_SIZE,
        epochs=epochs,
        verbose=verbose,
    )
    predicted = model.predict(pixels[validation], batch_size=BATCH_SIZE, verbose=0)
    scores = r_squared(scaled[validation], predicted)
    out.parent.mkdir(parents=True, exist_ok=True)
    models.save_weights(backbone, out)
    provenance = {
        "command": f"python -m hpa_utils pretrain --out {out} --images {images} --size {size} --epochs {epochs} "
        f"--seed {seed}",
        "commit": _commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "images": images,
        "validation_images": int(validation.sum()),
        "image_size": size,
        "rendered_at": RENDER_SIZE,
        "epochs": epochs,
        "seed": seed,
        "seconds": round(time.time() - started),
        "source_targets": list(SOURCE_TARGETS),
        "validation_r2": {name: round(float(value), 3) for name, value in zip(SOURCE_TARGETS, scores)},
        "validation_r2_mean": round(float(scores.mean()), 3),
        "backbone": "small",
        "loads_as": f"WEIGHTS={out.name} with BACKBONE=small (models.build_model(..., weights=path))",
    }
    files.write_json(out.with_suffix(".json"), provenance)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.json')}: validation R² "
        + ", ".join(f"{name} {value:.2f}" for name, value in zip(SOURCE_TARGETS, scores))
    )
    return provenance


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils pretrain`."""
    pretrain(arguments.out, images=arguments.images, size=arguments.size, epochs=arguments.epochs, seed=arguments.seed)
    return 0

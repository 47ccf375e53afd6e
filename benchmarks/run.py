"""Throughput of loading, augmentation, training input and prediction, side by side with the public kernel's way.

Run as ``python -m benchmarks.run`` (``make bench``). Every ratio is taken in one run on the same
synthetic 512 px PNGs in the Kaggle layout (generated once under ``data/bench`` and reused); the
kernel's way and ours run in turn, their order rotated every round, and the best of ``--repeats``
rounds is kept, because the machine is shared and noisy. The table ends with one line per target.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import io
import math
import os
import platform
import struct
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO_ROOT / "data" / "bench"
COLORS = ("red", "green", "blue", "yellow")  # dataset.COLORS, the kernel's rgby order
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TAIL_BYTES = 1024  # where dataset.load_channel looks for the IEND chunk

# Every row the table prints, in order (the test checks each one has a number).
LOADING_ROWS = (
    "kernel loader",
    "ours first pass",
    "ours cached pass",
    "zlib inflate ceiling",
)
BREAKDOWN_ROWS = (
    "find 4 files (image_path)",
    "read 4 files",
    "completeness check",
    "cv2.imdecode",
    "PIL decode (kernel)",
    "zlib inflate only",
    "resize INTER_AREA per channel",
    "np.stack + INTER_LINEAR (kernel)",
    "IMREAD_REDUCED_GRAYSCALE_2 + INTER_AREA",
    "load_sample total",
    "kernel loader total",
    "build_cache, 1 worker",
    "build_cache, all workers",
    "build_cache, cv2 1 thread",
    "proposal, all workers",
)
AUGMENTATION_ROWS = (
    "dihedral, model size",
    "dihedral, full size",
    "strong, model size",
    "strong, full size",
)
TRAINING_ROWS = (
    "epoch from memory",
    "epoch ours, no augmentation",
    "epoch ours, dihedral",
)
PREDICTION_ROWS = (
    "kernel one at a time",
    "ours batched",
    "ours 8-view TTA",
)
ROW_NAMES = LOADING_ROWS + BREAKDOWN_ROWS + AUGMENTATION_ROWS + TRAINING_ROWS + PREDICTION_ROWS
TARGET_NAMES = ("first pass", "cached passes", "input pipeline overhead", "batched prediction")
NAME_WIDTH = 42


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and counts of one benchmark run (the defaults, or the tiny ``--quick`` ones)."""

    samples: int = 200  # synthetic train samples (4 PNGs each)
    source_size: int = 512  # side of the PNGs, as Kaggle's
    load_size: int = 224  # what the loaders resize to (the kernel's input size)
    train_size: int = 64  # model input for training and prediction: ResNet50 at 224 is minutes per epoch here
    augment_batch: int = 16
    augment_calls: int = 3  # batches per augmentation timing
    batch_size: int = 32
    train_batches: int = 4  # batches per timed epoch
    kernel_predict_images: int = 24  # model.predict calls per timing (each one image)
    predict_images: int = 128
    tta_images: int = 32
    breakdown_samples: int = 48
    cached_passes: int = 3  # epochs over the cache per timing
    repeats: int = 3
    data_root: Path = DEFAULT_DATA_ROOT

    @classmethod
    def quick(cls, data_root: Path = DEFAULT_DATA_ROOT) -> "Settings":
        """A tiny run that checks the benchmark works (seconds of work, numbers meaningless)."""
        return cls(
            samples=8, source_size=64, load_size=32, train_size=32, augment_batch=4, augment_calls=1,
            batch_size=4, train_batches=2, kernel_predict_images=2, predict_images=8, tta_images=4,
            breakdown_samples=4, cached_passes=1, repeats=1, data_root=data_root,
        )


@dataclasses.dataclass
class Row:
    """One measured line of the table: a value with its unit, and how it compares."""

    name: str
    value: float
    unit: str
    comparison: str = ""
    detail: str = ""


def log(message: str) -> None:
    """Progress for the person waiting (stderr, so the table on stdout stays clean)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def format_number(value: float) -> str:
    """About three significant digits, without exponents: 1234, 56.7, 0.891."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_row(row: Row) -> str:
    return f"{row.name:<{NAME_WIDTH}} {format_number(row.value):>9} {row.unit:<10} {row.comparison:<16} {row.detail}".rstrip()


def target_line(name: str, measured: float, unit: str, goal: float, at_least: bool) -> str:
    """``target <name>: <measured> (goal <goal>) PASS|MISS``; ``at_least`` False means the goal is a maximum."""
    passed = measured >= goal if at_least else measured < goal
    sign = ">=" if at_least else "<"
    return (f"target {name}: {format_number(measured)}{unit} (goal {sign} {format_number(goal)}{unit}) "
            f"{'PASS' if passed else 'MISS'}")


def best_times(variants: dict, repeats: int) -> dict[str, float]:
    """The smallest time of each variant over ``repeats`` rounds.

    ``variants`` maps a name to a callable returning the seconds it measured (set-up stays out of
    the timing). All variants run in every round, in an order rotated round by round, so slow
    moments of the shared machine fall on each of them alike.
    """
    names = list(variants)
    best = {name: math.inf for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            best[name] = min(best[name], variants[name]())
    return best


def timed(function, *arguments, **keywords) -> float:
    start = time.perf_counter()
    function(*arguments, **keywords)
    return time.perf_counter() - start


def ratio_text(ours: float, kernel: float) -> str:
    return f"{ours / kernel:.2f}x kernel" if ours / kernel < 10 else f"{ours / kernel:.0f}x kernel"


# --- the public kernel's way --------------------------------------------------------------------------


def kernel_load_sample(data_dir: Path, image_id: str, image_size: int) -> np.ndarray:
    """The public kernel's loader: PIL.Image.open per channel, np.stack, cv2.resize (bilinear)."""
    from PIL import Image

    folder = Path(data_dir) / "train"
    channels = [np.array(Image.open(folder / f"{image_id}_{color}.png")) for color in COLORS]
    return cv2.resize(np.stack(channels, axis=-1), (image_size, image_size))


def png_idat(data: bytes) -> bytes:
    """The zlib stream of a PNG file: its IDAT chunks' payloads, concatenated. ValueError for a non-PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file (no PNG signature)")
    view, position, parts = memoryview(data), len(PNG_SIGNATURE), []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", view[position:position + 8])
        start = position + 8
        if start + length > len(data):
            raise ValueError(f"truncated PNG: a {kind!r} chunk runs past the end of the file")
        if kind == b"IDAT":
            parts.append(view[start:start + length])
        elif kind == b"IEND":
            break
        position = start + length + 4  # the chunk's CRC
    if not parts:
        raise ValueError("PNG without IDAT chunks")
    return b"".join(parts)


def proposed_load_channel(data: bytes, image_size: int) -> np.ndarray:
    """The proposal measured for dataset.load_channel: decode at half size when the target is at most half the side."""
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image_size * 2 <= min(array.shape[:2]):
        array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    return cv2.resize(array, (image_size, image_size), interpolation=cv2.INTER_AREA)


# --- machine and data ---------------------------------------------------------------------------------


def versions() -> str:
    names = {"numpy": "numpy", "opencv": "opencv-python-headless", "Pillow": "pillow", "tensorflow": "tensorflow",
             "keras": "keras", "imgaug": "imgaug"}
    found = []
    for label, distribution in names.items():
        try:
            found.append(f"{label} {importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{label} (not installed)")
    libraries = [line.strip() for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("PNG:")]
    png = libraries[0].split("(")[-1].rstrip(")") if libraries else "?"
    return (f"python {platform.python_version()}, " + ", ".join(found)
            + f", zlib {zlib.ZLIB_RUNTIME_VERSION}, libpng in cv2 {png}")


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def prepare_data(settings: Settings) -> tuple[Path, list[str]]:
    """The synthetic dataset of ``settings.samples`` train samples (generated once, then reused) and its train Ids."""
    from hpa_utils import dataset, synthetic

    with contextlib.redirect_stdout(sys.stderr):
        data_dir = synthetic.ensure_dataset(settings.data_root, n_train=settings.samples, n_test=1,
                                            image_size=settings.source_size, seed=0)
    ids = dataset.read_train_labels(data_dir)["Id"].tolist()
    return Path(data_dir), ids


# --- the measurements -----------------------------------------------------------------------------------


def measure_loading(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> tuple[list[Row], dict]:
    """Kernel loader vs build_cache (first pass) vs make_dataset over the cache vs the zlib ceiling, samples/s."""
    from hpa_utils import cache, inputs

    size, count = settings.load_size, len(ids)
    log(f"loading: {count} samples, {settings.source_size} px PNG -> {size} px, {settings.repeats} rounds")
    files = [data_dir / "train" / f"{image_id}_{color}.png" for image_id in ids for color in COLORS]
    streams = [png_idat(path.read_bytes()) for path in files]  # also puts every file in the page cache
    threads = os.cpu_count() or 1
    pool = ThreadPoolExecutor(max_workers=threads)
    cached = cache.build_cache(data_dir, "train", ids, size, "rgby", cache_dir=work_dir / "loading", progress=False)
    batches = inputs.make_dataset(cached, batch_size=settings.batch_size)
    for _ in batches:  # the first iteration builds the pipeline's threads
        pass

    def kernel():
        return timed(lambda: [kernel_load_sample(data_dir, image_id, size) for image_id in ids])

    def first_pass():
        with tempfile.TemporaryDirectory(dir=work_dir) as fresh:
            return timed(cache.build_cache, data_dir, "train", ids, size, "rgby", cache_dir=fresh, progress=False)

    def cached_passes():
        def passes():
            for _ in range(settings.cached_passes):
                for _ in batches:
                    pass
        return timed(passes) / settings.cached_passes

    def ceiling():
        return timed(lambda: list(pool.map(zlib.decompress, streams)))

    try:
        best = best_times({"kernel": kernel, "first": first_pass, "cached": cached_passes, "ceiling": ceiling},
                          settings.repeats)
    finally:
        pool.shutdown()
    rate = {name: count / seconds for name, seconds in best.items()}
    rows = [
        Row("kernel loader", rate["kernel"], "samples/s", "1.00x kernel", "PIL per channel, np.stack, cv2.resize; 1 thread"),
        Row("ours first pass", rate["first"], "samples/s", ratio_text(rate["first"], rate["kernel"]),
            f"cache.build_cache into a fresh folder, {threads} threads"),
        Row("ours cached pass", rate["cached"], "samples/s", ratio_text(rate["cached"], rate["kernel"]),
            f"inputs.make_dataset over the memmap, batch {settings.batch_size}, no augmentation"),
        Row("zlib inflate ceiling", rate["ceiling"], "samples/s", ratio_text(rate["ceiling"], rate["kernel"]),
            f"IDAT bytes only, {threads} threads; ours first pass = {100 * rate['first'] / rate['ceiling']:.0f} % of it"),
    ]
    return rows, rate


def measure_breakdown(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> list[Row]:
    """Where a sample's load time goes (1 thread, ms per sample), and how build_cache scales with threads."""
    from hpa_utils import cache, dataset

    ids = ids[:settings.breakdown_samples]
    size, count = settings.load_size, len(ids)
    log(f"first-pass breakdown: {count} samples")
    paths = [[dataset.image_path(data_dir, "train", image_id, color) for color in COLORS] for image_id in ids]
    contents = [[path.read_bytes() for path in sample] for sample in paths]
    decoded = [[cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) for data in sample]
               for sample in contents]
    streams = [[png_idat(data) for data in sample] for sample in contents]

    def per_sample(function):
        def run():
            return timed(lambda: [function(index) for index in range(count)])
        return run

    def pil_decode(index):
        from PIL import Image

        return [np.array(Image.open(io.BytesIO(data))) for data in contents[index]]

    def complete(index):
        for data in contents[index]:
            data.find(b"IEND", max(0, len(data) - PNG_TAIL_BYTES))

    def with_cv2_threads(threads, function):
        previous = cv2.getNumThreads()
        cv2.setNumThreads(threads)
        try:
            return function()
        finally:
            cv2.setNumThreads(previous)

    def build(workers=None, cv2_threads=None):
        def run():
            with tempfile.TemporaryDirectory(dir=work_dir) as fresh:
                call = lambda: timed(cache.build_cache, data_dir, "train", ids, size, "rgby", cache_dir=fresh,
                                     workers=workers, progress=False)
                return call() if cv2_threads is None else with_cv2_threads(cv2_threads, call)
        return run

    def proposal():
        def load(index):
            return np.stack([proposed_load_channel(Path(path).read_bytes(), size) for path in paths[index]], axis=-1)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return timed(lambda: list(pool.map(load, range(count))))

    variants = {
        "find 4 files (image_path)": per_sample(
            lambda index: [dataset.image_path(data_dir, "train", ids[index], color) for color in COLORS]),
        "read 4 files": per_sample(lambda index: [path.read_bytes() for path in paths[index]]),
        "completeness check": per_sample(complete),
        "cv2.imdecode": per_sample(lambda index: [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                                                  for data in contents[index]]),
        "PIL decode (kernel)": per_sample(pil_decode),
        "zlib inflate only": per_sample(lambda index: [zlib.decompress(stream) for stream in streams[index]]),
        "resize INTER_AREA per channel": per_sample(
            lambda index: [cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA) for array in decoded[index]]),
        "np.stack + INTER_LINEAR (kernel)": per_sample(
            lambda index: cv2.resize(np.stack(decoded[index], axis=-1), (size, size))),
        "IMREAD_REDUCED_GRAYSCALE_2 + INTER_AREA": per_sample(
            lambda index: [cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2),
                                      (size, size), interpolation=cv2.INTER_AREA) for data in contents[index]]),
        "load_sample total": per_sample(lambda index: dataset.load_sample(data_dir, "train", ids[index], "rgby", size)),
        "kernel loader total": per_sample(lambda index: kernel_load_sample(data_dir, ids[index], size)),
        "build_cache, 1 worker": build(workers=1),
        "build_cache, all workers": build(),
        "build_cache, cv2 1 thread": build(cv2_threads=1),
        "proposal, all workers": proposal,
    }
    best = best_times(variants, settings.repeats)
    threads = os.cpu_count() or 1
    milliseconds = {name: 1000 * seconds / count for name, seconds in best.items()}
    rows = []
    for name in BREAKDOWN_ROWS[:11]:
        rows.append(Row(name, milliseconds[name], "ms/sample",
                        f"{100 * milliseconds[name] / milliseconds['load_sample total']:.0f} % of ours"))
    one_worker = count / best["build_cache, 1 worker"]
    kernel = count / best["kernel loader total"]
    details = {
        "build_cache, 1 worker": "",
        "build_cache, all workers": f"{threads} threads, cv2 with {cv2.getNumThreads()} threads",
        "build_cache, cv2 1 thread": f"{threads} threads, cv2.setNumThreads(1)",
        "proposal, all workers": f"{threads} threads: cv2 decode, REDUCED_2 when target <= half, INTER_AREA, no checks",
    }
    for name, detail in details.items():
        rate = count / best[name]
        rows.append(Row(name, rate, "samples/s", ratio_text(rate, kernel),
                        f"{rate / one_worker:.2f}x 1 worker" + (f"; {detail}" if detail else "")))
    return rows


def measure_augmentation(settings: Settings, data_dir: Path, ids: list[str]) -> list[Row]:
    """ms per image of augment_batch for "dihedral" and "strong", at the model size and the full size."""
    from hpa_utils import augment, dataset

    count = settings.augment_batch
    full = np.stack([dataset.load_sample(data_dir, "train", ids[index % len(ids)], "rgby") for index in range(count)])
    small = np.stack([cv2.resize(image, (settings.load_size, settings.load_size), interpolation=cv2.INTER_AREA)
                      for image in full])
    log(f"augmentation: batches of {count} rgby images at {settings.load_size} and {settings.source_size} px")
    augmenters = {name: augment.build_augmenter(name) for name in ("dihedral", "strong")}
    for augmenter in augmenters.values():  # first calls pay imgaug's imports and caches
        augment.augment_batch(small, augmenter, seed=0)

    def variant(name, images):
        def run():
            return timed(lambda: [augment.augment_batch(images, augmenters[name], seed=seed)
                                  for seed in range(settings.augment_calls)])
        return run

    variants = {
        "dihedral, model size": variant("dihedral", small),
        "dihedral, full size": variant("dihedral", full),
        "strong, model size": variant("strong", small),
        "strong, full size": variant("strong", full),
    }
    best = best_times(variants, settings.repeats)
    rows = []
    for name in AUGMENTATION_ROWS:
        side = settings.load_size if name.endswith("model size") else settings.source_size
        milliseconds = 1000 * best[name] / (settings.augment_calls * count)
        rows.append(Row(name, milliseconds, "ms/image", "", f"{side} px rgby uint8, batches of {count}, 1 thread"))
    return rows


def build_small_model(settings: Settings):
    from hpa_utils import models, training

    model = models.build_model("resnet50", settings.train_size, "rgby", "none")
    return training.compile_model(model, learning_rate=1e-4)


def measure_training(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path, model) -> tuple[list[Row], float]:
    """One epoch's time fed by make_dataset (memmap, with and without dihedral) vs from memory; overhead in %."""
    import tensorflow as tf

    from hpa_utils import cache, dataset, inputs, labels

    count = min(len(ids), settings.batch_size * settings.train_batches)
    images = cache.build_cache(data_dir, "train", ids, settings.train_size, "rgby", cache_dir=work_dir / "training",
                               progress=False)
    frame = dataset.read_train_labels(data_dir)
    targets = labels.to_multi_hot(frame["labels"].tolist(), dtype=np.float32)
    indices = np.arange(count)
    log(f"training: ResNet50 {settings.train_size} px rgby, {count} samples in batches of {settings.batch_size}")
    feeds = {
        "epoch from memory": tf.data.Dataset.from_tensor_slices((np.array(images[:count]), targets[:count]))
        .batch(settings.batch_size).prefetch(tf.data.AUTOTUNE),
        "epoch ours, no augmentation": inputs.make_dataset(images, targets, settings.batch_size, indices=indices),
        "epoch ours, dihedral": inputs.make_dataset(images, targets, settings.batch_size, augmentation="dihedral",
                                                    indices=indices),
    }
    for feed in feeds.values():  # warm-up: traces the train step and starts each pipeline once
        model.fit(feed, epochs=1, verbose=0)
    variants = {name: (lambda feed=feed: timed(model.fit, feed, epochs=1, verbose=0)) for name, feed in feeds.items()}
    best = best_times(variants, settings.repeats)
    memory = best["epoch from memory"]
    rows, overheads = [], []
    for name in TRAINING_ROWS:
        overhead = 100 * (best[name] - memory) / memory
        if name != "epoch from memory":
            overheads.append(overhead)
        comparison = "baseline" if name == "epoch from memory" else f"{overhead:+.1f} % overhead"
        rows.append(Row(name, best[name], "s", comparison, f"{count / best[name]:.1f} images/s"))
    return rows, max(overheads)


def measure_prediction(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path, model) -> tuple[list[Row], float]:
    """images/s of one model.predict call per image vs predict_tta batched, with 1 and 8 views."""
    from hpa_utils import cache, predict

    images = np.array(cache.build_cache(data_dir, "train", ids, settings.train_size, "rgby",
                                        cache_dir=work_dir / "training", progress=False))
    count = min(len(images), settings.predict_images)
    kernel_count = min(count, settings.kernel_predict_images)
    tta_count = min(count, settings.tta_images)
    log(f"prediction: {kernel_count} images one at a time, {count} batched, {tta_count} with 8 views")
    model.predict(images[:1], verbose=0)  # warm-up: builds the predict function
    predict.predict_tta(model, images[:settings.batch_size], views=8, batch_size=settings.batch_size, progress=False)

    def kernel():
        return timed(lambda: [model.predict(image[None], verbose=0) for image in images[:kernel_count]])

    variants = {
        "kernel one at a time": kernel,
        "ours batched": lambda: timed(predict.predict_tta, model, images[:count], views=1,
                                      batch_size=settings.batch_size, progress=False),
        "ours 8-view TTA": lambda: timed(predict.predict_tta, model, images[:tta_count], views=8,
                                         batch_size=settings.batch_size, progress=False),
    }
    best = best_times(variants, settings.repeats)
    rate = {
        "kernel one at a time": kernel_count / best["kernel one at a time"],
        "ours batched": count / best["ours batched"],
        "ours 8-view TTA": tta_count / best["ours 8-view TTA"],
    }
    kernel_rate = rate["kernel one at a time"]
    rows = [
        Row("kernel one at a time", kernel_rate, "images/s", "1.00x kernel", "model.predict(image[None]) per image"),
        Row("ours batched", rate["ours batched"], "images/s", ratio_text(rate["ours batched"], kernel_rate),
            f"predict.predict_tta views=1, batch {settings.batch_size}"),
        Row("ours 8-view TTA", rate["ours 8-view TTA"], "images/s", ratio_text(rate["ours 8-view TTA"], kernel_rate),
            f"views=8: {8 * rate['ours 8-view TTA']:.1f} views/s, "
            f"{8 * rate['ours 8-view TTA'] / kernel_rate:.1f}x kernel per view"),
    ]
    return rows, rate["ours batched"] / kernel_rate


# --- the table --------------------------------------------------------------------------------------------


def print_section(title: str, rows: list[Row]) -> None:
    print()
    print(f"## {title}")
    print(f"{'':<{NAME_WIDTH}} {'value':>9} {'unit':<10} {'compared':<16} how")
    for row in rows:
        print(format_row(row))
    sys.stdout.flush()


def run(settings: Settings) -> int:
    """Measure everything and print the table; returns the exit code (0, also when a target is missed)."""
    started = time.perf_counter()
    load_at_start = load_average()
    print("# HPA input and prediction benchmarks (python -m benchmarks.run)")
    print(f"machine: {platform.system()} {platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
          f"usable CPUs {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, "
          f"cv2 threads {cv2.getNumThreads()}, load average at start {load_at_start}")
    print(f"versions: {versions()}")
    data_dir, ids = prepare_data(settings)
    print(f"data: {len(ids)} train samples, {settings.source_size} px PNG (Kaggle layout, synthetic.generate) in {data_dir}")
    print(f"sizes: loaders resize to {settings.load_size} px; training and prediction use ResNet50 at "
          f"{settings.train_size} px rgby, weights none; best of {settings.repeats} rounds, kernel and ours in turn")
    sys.stdout.flush()
    settings.data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work-", dir=settings.data_root) as work:
        work_dir = Path(work)
        loading_rows, loading = measure_loading(settings, data_dir, ids, work_dir)
        print_section(f"1. loading: samples/s, {settings.source_size} px PNG -> {settings.load_size} px rgby", loading_rows)
        print_section(f"1b. first pass breakdown ({min(len(ids), settings.breakdown_samples)} samples; "
                      f"stages on 1 thread, then whole passes)", measure_breakdown(settings, data_dir, ids, work_dir))
        print_section("2. augmentation: ms per image (augment.augment_batch)",
                      measure_augmentation(settings, data_dir, ids))
        log("training: building ResNet50")
        model = build_small_model(settings)
        training_rows, overhead = measure_training(settings, data_dir, ids, work_dir, model)
        print_section(f"3. training: one epoch of ResNet50 {settings.train_size} px rgby (model.fit)", training_rows)
        prediction_rows, prediction_ratio = measure_prediction(settings, data_dir, ids, work_dir, model)
        print_section(f"4. prediction: ResNet50 {settings.train_size} px rgby", prediction_rows)
    kernel = loading["kernel"]
    print()
    print(f"load average at end {load_average()}; took {time.perf_counter() - started:.0f} s")
    print(target_line("first pass", loading["first"] / kernel, "x", 2, at_least=True))
    print(target_line("cached passes", loading["cached"] / kernel, "x", 30, at_least=True))
    print(target_line("input pipeline overhead", overhead, " %", 5, at_least=False))
    print(target_line("batched prediction", prediction_ratio, "x", 10, at_least=True))
    return 0


def parse_settings(argv=None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, help="synthetic train samples to measure on (default 200; 8 with --quick)")
    parser.add_argument("--repeats", type=int, help="rounds per measurement, the best kept (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run (64 px PNGs, 32 px model) that checks the benchmark runs; its numbers mean nothing")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help=f"where the synthetic PNGs are generated once and reused (default {DEFAULT_DATA_ROOT})")
    arguments = parser.parse_args(argv)
    settings = Settings.quick(arguments.data_root) if arguments.quick else Settings(data_root=arguments.data_root)
    for name in ("samples", "repeats"):
        value = getattr(arguments, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name} must be at least 1, got {value}")
            settings = dataclasses.replace(settings, **{name: value})
    return settings


def main(argv=None) -> int:
    return run(parse_settings(argv))


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of loading, augmentation, training input and prediction, side by side with the public kernel's way.

Run as ``python -m benchmarks.run`` (``make bench``). Every ratio is taken in one run on the same
synthetic 512 px PNGs in the Kaggle layout (generated once under ``data/bench`` and reused); the
kernel's way and ours run in turn, their order rotated every round, and the best of ``--repeats``
rounds is kept, because the machine is shared and noisy. Training feeds take turns step by step
and an epoch is counted from the median step. The table ends with one line per target.
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

from hpa_utils.environment import REPO_ROOT

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
STAGE_ROWS = (  # ms per sample on one thread
    "find 4 files (image_path)",
    "read 4 files",
    "completeness check",
    "cv2.imdecode",
    "PIL decode (kernel)",
    "zlib inflate only",
    "resize INTER_AREA per channel",
    "np.stack + INTER_LINEAR (kernel)",
    "IMREAD_REDUCED_GRAYSCALE_2 + INTER_AREA",
    "resize halve, then INTER_AREA",
    "load_sample total",
    "load_sample, half decode",
    "load_sample, halve resize",
    "kernel loader total",
)
PASS_ROWS = (  # samples/s of whole passes
    "zlib inflate, 1 thread",
    "zlib inflate, all threads",
    "build_cache, 1 worker",
    "build_cache, all workers",
    "build_cache, cv2 1 thread",
    "build_cache, half decode",
    "build_cache, halve resize",
)
BREAKDOWN_ROWS = STAGE_ROWS + PASS_ROWS
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
    "pipeline alone, from memory",
    "pipeline alone, no augmentation",
    "pipeline alone, dihedral",
)
PREDICTION_ROWS = (
    "kernel one at a time",
    "ours batched",
    "ours 8-view TTA",
    "predict_tta fixed cost per call",
    "proposal: function traced once",
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
    training_repeats: int = 4  # rounds of train_batches steps per feed, interleaved step by step
    data_root: Path = DEFAULT_DATA_ROOT

    @classmethod
    def quick(cls, data_root: Path = DEFAULT_DATA_ROOT) -> "Settings":
        """A tiny run that checks the benchmark works (seconds of work, numbers meaningless)."""
        return cls(
            samples=8,
            source_size=64,
            load_size=32,
            train_size=32,
            augment_batch=4,
            augment_calls=1,
            batch_size=4,
            train_batches=2,
            kernel_predict_images=2,
            predict_images=8,
            tta_images=4,
            breakdown_samples=4,
            cached_passes=1,
            repeats=1,
            training_repeats=1,
            data_root=data_root,
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
    """Progress for the person waiting (stderr, so the table on stdout stays clean), with the time of day."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
    value = format_number(row.value)
    return f"{row.name:<{NAME_WIDTH}} {value:>9} {row.unit:<10} {row.comparison:<16} {row.detail}".rstrip()


def target_line(name: str, measured: float, unit: str, goal: float, at_least: bool) -> str:
    """``target <name>: <measured> (goal <goal>) PASS|MISS``; ``at_least`` False means the goal is a maximum."""
    passed = measured >= goal if at_least else measured < goal
    sign = ">=" if at_least else "<"
    return (
        f"target {name}: {format_number(measured)}{unit} (goal {sign} {format_number(goal)}{unit}) "
        f"{'PASS' if passed else 'MISS'}"
    )


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
        length, kind = struct.unpack(">I4s", view[position : position + 8])
        start = position + 8
        if start + length > len(data):
            raise ValueError(f"truncated PNG: a {kind!r} chunk runs past the end of the file")
        if kind == b"IDAT":
            parts.append(view[start : start + length])
        elif kind == b"IEND":
            break
        position = start + length + 4  # the chunk's CRC
    if not parts:
        raise ValueError("PNG without IDAT chunks")
    return b"".join(parts)


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, or None for anything else."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 26 or data[12:16] != b"IHDR":
        return None
    width, height, bit_depth, color_type = struct.unpack(">IIBB", data[16:26])
    return width, height, bit_depth, color_type


def halve_then_resize(array: np.ndarray, image_size: int) -> np.ndarray:
    """INTER_AREA to ``image_size`` in steps: halve (OpenCV's fast 2x2 path) while the side stays at least
    twice the target, then one INTER_AREA resize. Box filters both, so close to one INTER_AREA resize
    (exactly equal for a plain halving) at about half the cost for 512 -> 224 px.
    """
    while min(array.shape[:2]) >= 2 * image_size:
        array = cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(array, (image_size, image_size), interpolation=cv2.INTER_AREA)


def proposed_load_sample(data_dir: Path, image_id: str, image_size: int, proposal: str) -> np.ndarray:
    """load_sample for 8-bit grayscale PNGs as the two proposals for dataset.load_channel would do it.

    "half decode": a PNG at least twice the target side is decoded with cv2.IMREAD_REDUCED_GRAYSCALE_2
    (only for 8-bit grayscale files, where it cannot mix colours), then INTER_AREA as now.
    "halve resize": decoded as now, resized by ``halve_then_resize`` (any file type).
    The rest (file lookup, the completeness check, one array per sample) is kept as load_sample does it.
    """
    from hpa_utils import dataset

    channels = []
    for color in COLORS:
        path = dataset.image_path(data_dir, "train", image_id, color)
        data = path.read_bytes()
        if data.find(b"IEND", max(0, len(data) - PNG_TAIL_BYTES)) == -1:
            raise ValueError(f"{path}: truncated PNG")
        buffer = np.frombuffer(data, dtype=np.uint8)
        if proposal == "half decode":
            header = png_header(data)
            half = header is not None and header[2:] == (8, 0) and min(header[:2]) >= 2 * image_size
            array = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_2 if half else cv2.IMREAD_UNCHANGED)
            channels.append(cv2.resize(array, (image_size, image_size), interpolation=cv2.INTER_AREA))
        elif proposal == "halve resize":
            channels.append(halve_then_resize(cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED), image_size))
        else:
            raise ValueError(f"unknown proposal {proposal!r}")
    return np.stack(channels, axis=-1)


def reusable_predictor(model, image_shape, dtype, views: int = 1, batch_size: int = 32):
    """The proposal measured for predict.predict_tta: the same computation, with its tf.function traced
    once and reused by every call (predict_tta traces a new one per call). Returns predict(images).
    """
    import tensorflow as tf

    from hpa_utils import predict

    batch_spec = tf.TensorSpec((None, *image_shape), tf.as_dtype(dtype))
    input_dtype = str(model.inputs[0].dtype)

    @tf.function(input_signature=[batch_spec])
    def predict_views(batch):
        stacked = tf.concat([predict.dihedral_tf(batch, index) for index in range(views)], axis=0)
        outputs = tf.cast(model(tf.cast(stacked, input_dtype), training=False), tf.float32)
        outputs = tf.reshape(outputs, [views, tf.shape(batch)[0], -1])
        return tf.reduce_mean(outputs, axis=0)

    def run(images):
        batches = tf.data.Dataset.from_generator(
            lambda: (
                np.ascontiguousarray(images[start : start + batch_size]) for start in range(0, len(images), batch_size)
            ),
            output_signature=batch_spec,
        ).prefetch(2)
        return np.concatenate([predict_views(batch).numpy() for batch in batches])

    return run


# --- machine and data ---------------------------------------------------------------------------------


def versions() -> str:
    names = {
        "numpy": "numpy",
        "opencv": "opencv-python-headless",
        "Pillow": "pillow",
        "tensorflow": "tensorflow",
        "keras": "keras",
        "imgaug": "imgaug",
    }
    found = []
    for label, distribution in names.items():
        try:
            found.append(f"{label} {importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{label} (not installed)")
    libraries = [line.strip() for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("PNG:")]
    png = libraries[0].split("(")[-1].rstrip(")").replace("ver ", "") if libraries else "?"
    return (
        f"python {platform.python_version()}, "
        + ", ".join(found)
        + f", zlib {zlib.ZLIB_RUNTIME_VERSION}, libpng in cv2 {png}"
    )


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def prepare_data(settings: Settings) -> tuple[Path, list[str]]:
    """The synthetic dataset of ``settings.samples`` train samples (generated once, then reused) and its train Ids."""
    from hpa_utils import dataset, synthetic

    with contextlib.redirect_stdout(sys.stderr):
        data_dir = synthetic.ensure_dataset(
            settings.data_root, n_train=settings.samples, n_test=1, image_size=settings.source_size, seed=0
        )
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
        best = best_times(
            {"kernel": kernel, "first": first_pass, "cached": cached_passes, "ceiling": ceiling}, settings.repeats
        )
    finally:
        pool.shutdown()
    rate = {name: count / seconds for name, seconds in best.items()}
    rows = [
        Row(
            "kernel loader",
            rate["kernel"],
            "samples/s",
            "1.00x kernel",
            "PIL per channel, np.stack, cv2.resize; 1 thread",
        ),
        Row(
            "ours first pass",
            rate["first"],
            "samples/s",
            ratio_text(rate["first"], rate["kernel"]),
            f"cache.build_cache into a fresh folder, {threads} threads",
        ),
        Row(
            "ours cached pass",
            rate["cached"],
            "samples/s",
            ratio_text(rate["cached"], rate["kernel"]),
            f"inputs.make_dataset over the memmap, batch {settings.batch_size}, no augmentation",
        ),
        Row(
            "zlib inflate ceiling",
            rate["ceiling"],
            "samples/s",
            ratio_text(rate["ceiling"], rate["kernel"]),
            f"IDAT bytes only, {threads} threads; "
            f"ours first pass = {100 * rate['first'] / rate['ceiling']:.0f} % of it",
        ),
    ]
    return rows, rate


def measure_breakdown(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> list[Row]:
    """Where a sample's load time goes (1 thread, ms per sample), and how build_cache scales with threads."""
    from hpa_utils import cache, dataset

    ids = ids[: settings.breakdown_samples]
    size, count = settings.load_size, len(ids)
    log(f"first-pass breakdown: {count} samples")
    paths = [[dataset.image_path(data_dir, "train", image_id, color) for color in COLORS] for image_id in ids]
    contents = [[path.read_bytes() for path in sample] for sample in paths]
    decoded = [
        [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) for data in sample] for sample in contents
    ]
    streams = [[png_idat(data) for data in sample] for sample in contents]
    threads = os.cpu_count() or 1

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

    def with_cv2_threads(cv2_threads, function):
        previous = cv2.getNumThreads()
        cv2.setNumThreads(cv2_threads)
        try:
            return function()
        finally:
            cv2.setNumThreads(previous)

    def build(workers=None, cv2_threads=None):
        def run():
            with tempfile.TemporaryDirectory(dir=work_dir) as fresh:

                def call():
                    return timed(
                        cache.build_cache,
                        data_dir,
                        "train",
                        ids,
                        size,
                        "rgby",
                        cache_dir=fresh,
                        workers=workers,
                        progress=False,
                    )

                return call() if cv2_threads is None else with_cv2_threads(cv2_threads, call)

        return run

    def proposal(name):
        def run():
            with tempfile.TemporaryDirectory(dir=work_dir) as fresh:
                array = np.memmap(Path(fresh) / "proposal.u8", dtype=np.uint8, mode="w+", shape=(count, size, size, 4))

                def load(index):
                    array[index] = proposed_load_sample(data_dir, ids[index], size, name)

                def build():
                    with ThreadPoolExecutor(max_workers=threads) as pool:
                        list(pool.map(load, range(count)))
                    array.flush()

                seconds = timed(build)
                array = None  # close the memmap before its folder goes
                return seconds

        return run

    def inflate(workers):
        flat = [stream for sample in streams for stream in sample]

        def run():
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return timed(lambda: list(pool.map(zlib.decompress, flat)))

        return run

    variants = {
        "find 4 files (image_path)": per_sample(
            lambda index: [dataset.image_path(data_dir, "train", ids[index], color) for color in COLORS]
        ),
        "read 4 files": per_sample(lambda index: [path.read_bytes() for path in paths[index]]),
        "completeness check": per_sample(complete),
        "cv2.imdecode": per_sample(
            lambda index: [
                cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) for data in contents[index]
            ]
        ),
        "PIL decode (kernel)": per_sample(pil_decode),
        "zlib inflate only": per_sample(lambda index: [zlib.decompress(stream) for stream in streams[index]]),
        "resize INTER_AREA per channel": per_sample(
            lambda index: [cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA) for array in decoded[index]]
        ),
        "np.stack + INTER_LINEAR (kernel)": per_sample(
            lambda index: cv2.resize(np.stack(decoded[index], axis=-1), (size, size))
        ),
        "IMREAD_REDUCED_GRAYSCALE_2 + INTER_AREA": per_sample(
            lambda index: [
                cv2.resize(
                    cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2),
                    (size, size),
                    interpolation=cv2.INTER_AREA,
                )
                for data in contents[index]
            ]
        ),
        "resize halve, then INTER_AREA": per_sample(
            lambda index: [halve_then_resize(array, size) for array in decoded[index]]
        ),
        "load_sample total": per_sample(lambda index: dataset.load_sample(data_dir, "train", ids[index], "rgby", size)),
        "load_sample, half decode": per_sample(
            lambda index: proposed_load_sample(data_dir, ids[index], size, "half decode")
        ),
        "load_sample, halve resize": per_sample(
            lambda index: proposed_load_sample(data_dir, ids[index], size, "halve resize")
        ),
        "kernel loader total": per_sample(lambda index: kernel_load_sample(data_dir, ids[index], size)),
        "zlib inflate, 1 thread": inflate(1),
        "zlib inflate, all threads": inflate(threads),
        "build_cache, 1 worker": build(workers=1),
        "build_cache, all workers": build(),
        "build_cache, cv2 1 thread": build(cv2_threads=1),
        "build_cache, half decode": proposal("half decode"),
        "build_cache, halve resize": proposal("halve resize"),
    }
    best = best_times(variants, settings.repeats)
    milliseconds = {name: 1000 * seconds / count for name, seconds in best.items()}

    def difference(proposal_name):
        differences = np.concatenate(
            [
                np.abs(
                    proposed_load_sample(data_dir, image_id, size, proposal_name).astype(np.int16)
                    - dataset.load_sample(data_dir, "train", image_id, "rgby", size)
                ).ravel()
                for image_id in ids
            ]
        )
        return f"pixels vs load_sample: mean |diff| {differences.mean():.2f}, max {int(differences.max())}"

    stage_details = {
        "cv2.imdecode": "ours (libpng via cv2)",
        "PIL decode (kernel)": "the kernel's decoder",
        "zlib inflate only": "the part of decoding no decoder can skip",
        "resize INTER_AREA per channel": f"ours, {settings.source_size} -> {size} px",
        "np.stack + INTER_LINEAR (kernel)": "the kernel's",
        "IMREAD_REDUCED_GRAYSCALE_2 + INTER_AREA": "decode at half size, then resize",
        "resize halve, then INTER_AREA": "INTER_AREA 2x steps, then INTER_AREA",
        "load_sample, half decode": difference("half decode"),
        "load_sample, halve resize": difference("halve resize"),
    }
    rows = []
    for name in STAGE_ROWS:
        rows.append(
            Row(
                name,
                milliseconds[name],
                "ms/sample",
                f"{100 * milliseconds[name] / milliseconds['load_sample total']:.0f} % of ours",
                stage_details.get(name, ""),
            )
        )
    kernel = count / best["kernel loader total"]
    one_thread = {"zlib": count / best["zlib inflate, 1 thread"], "build": count / best["build_cache, 1 worker"]}
    details = {
        "zlib inflate, 1 thread": ("zlib", "the reference for the next line"),
        "zlib inflate, all threads": ("zlib", f"{threads} threads: the parallelism this machine gives now"),
        "build_cache, 1 worker": ("build", "the reference for the next lines"),
        "build_cache, all workers": ("build", f"{threads} threads, cv2 with {cv2.getNumThreads()} threads of its own"),
        "build_cache, cv2 1 thread": ("build", f"{threads} threads, cv2.setNumThreads(1) around the build"),
        "build_cache, half decode": ("build", f"{threads} threads, load_sample with the half decode"),
        "build_cache, halve resize": ("build", f"{threads} threads, load_sample with the halve resize"),
    }
    for name, (reference, detail) in details.items():
        rate = count / best[name]
        rows.append(
            Row(
                name,
                rate,
                "samples/s",
                ratio_text(rate, kernel),
                f"{rate / one_thread[reference]:.2f}x 1 thread; {detail}",
            )
        )
    return rows


def measure_augmentation(settings: Settings, data_dir: Path, ids: list[str]) -> list[Row]:
    """ms per image of augment_batch for "dihedral" and "strong", at the model size and the full size."""
    from hpa_utils import augment, dataset

    count = settings.augment_batch
    full = np.stack([dataset.load_sample(data_dir, "train", ids[index % len(ids)], "rgby") for index in range(count)])
    small = np.stack(
        [cv2.resize(image, (settings.load_size, settings.load_size), interpolation=cv2.INTER_AREA) for image in full]
    )
    log(f"augmentation: batches of {count} rgby images at {settings.load_size} and {settings.source_size} px")
    augmenters = {name: augment.build_augmenter(name) for name in ("dihedral", "strong")}
    for augmenter in augmenters.values():  # first calls pay imgaug's imports and caches
        augment.augment_batch(small, augmenter, seed=0)

    def variant(name, images):
        def run():
            return timed(
                lambda: [
                    augment.augment_batch(images, augmenters[name], seed=seed) for seed in range(settings.augment_calls)
                ]
            )

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


def measure_training(
    settings: Settings, data_dir: Path, ids: list[str], work_dir: Path, model
) -> tuple[list[Row], float]:
    """One epoch's time fed by make_dataset (memmap, with and without dihedral) vs from memory, and the
    pipelines' own cost without a model. Returns the rows and the overhead (%) with dihedral augmentation.

    The feeds give the same batches (in order, no shuffling); ours adds the dihedral augmentation in one variant.
    """
    import tensorflow as tf

    from hpa_utils import cache, dataset, inputs, labels

    count = min(len(ids), settings.batch_size * settings.train_batches)
    images = cache.build_cache(
        data_dir, "train", ids, settings.train_size, "rgby", cache_dir=work_dir / "training", progress=False
    )
    frame = dataset.read_train_labels(data_dir)
    targets = labels.to_multi_hot(frame["labels"].tolist(), dtype=np.float32)
    indices = np.arange(count)
    log(f"training: ResNet50 {settings.train_size} px rgby, {count} samples in batches of {settings.batch_size}")
    feeds = {
        "epoch from memory": tf.data.Dataset.from_tensor_slices((np.array(images[:count]), targets[:count]))
        .batch(settings.batch_size)
        .prefetch(tf.data.AUTOTUNE),
        "epoch ours, no augmentation": inputs.make_dataset(images, targets, settings.batch_size, indices=indices),
        "epoch ours, dihedral": inputs.make_dataset(
            images, targets, settings.batch_size, augmentation="dihedral", indices=indices
        ),
    }
    # One train step (model.train_on_batch, what fit runs per batch) per feed in turn, the order
    # rotated each time: the shared machine's load, which swings more than the effect measured here
    # from one epoch to the next (a step takes 1x or 2x), falls on every feed alike. An epoch is then
    # its start-up (a new iterator and its first batch, best of the rounds) plus train_batches median
    # steps: under steady load from others the fastest step is rare and lands on one feed by chance,
    # while the median of interleaved steps moves alike for all.
    iterators = {name: iter(feed.repeat()) for name, feed in feeds.items()}

    def train_step(name):
        images_batch, targets_batch = next(iterators[name])
        model.train_on_batch(images_batch, targets_batch)

    for name in feeds:  # warm-up: traces the train step, fills each pipeline
        for _ in range(2):
            train_step(name)
    startup = best_times(
        {name: (lambda feed=feed: timed(lambda: next(iter(feed)))) for name, feed in feeds.items()}, settings.repeats
    )
    step_seconds = {name: [] for name in feeds}
    step_processor_seconds = {name: [] for name in feeds}
    names = list(feeds)
    for step_index in range(settings.training_repeats * settings.train_batches):
        shift = step_index % len(names)
        for name in names[shift:] + names[:shift]:
            processor_start = time.process_time()
            step_seconds[name].append(timed(train_step, name))
            step_processor_seconds[name].append(time.process_time() - processor_start)
    epoch = {name: startup[name] + settings.train_batches * float(np.median(step_seconds[name])) for name in feeds}
    epoch_processor = {name: settings.train_batches * float(np.median(step_processor_seconds[name])) for name in feeds}
    memory, memory_processor = epoch["epoch from memory"], epoch_processor["epoch from memory"]
    rows = []
    for name in names:
        overhead = 100 * (epoch[name] - memory) / memory
        processor_overhead = 100 * (epoch_processor[name] - memory_processor) / memory_processor
        comparison = "baseline" if name == "epoch from memory" else f"{overhead:+.1f} % overhead"
        low, median, high = np.percentile(step_seconds[name], [10, 50, 90])
        rows.append(
            Row(
                name,
                epoch[name],
                "s",
                comparison,
                f"{count / epoch[name]:.1f} images/s; step median {median:.3f} s (p10 {low:.3f}, p90 "
                f"{high:.3f}, {len(step_seconds[name])} steps); start-up {1000 * startup[name]:.0f} ms; "
                f"CPU time {processor_overhead:+.1f} %",
            )
        )

    # The pipelines alone, no model: what each costs per epoch (a new iterator, all batches).
    alone_names = dict(
        zip(("pipeline alone, from memory", "pipeline alone, no augmentation", "pipeline alone, dihedral"), names)
    )
    alone_processor = {row: math.inf for row in alone_names}

    def alone(row):
        def run():
            processor_start = time.process_time()
            seconds = timed(lambda: [None for _ in feeds[alone_names[row]]])
            alone_processor[row] = min(alone_processor[row], time.process_time() - processor_start)
            return seconds

        return run

    alone_best = best_times({row: alone(row) for row in alone_names}, 3 * settings.repeats)
    for row in alone_names:
        share = 100 * alone_best[row] / memory
        processor_share = 100 * alone_processor[row] / memory_processor
        rows.append(
            Row(
                row,
                1000 * alone_best[row],
                "ms/epoch",
                f"{share:.1f} % of epoch",
                f"CPU time {1000 * alone_processor[row]:.0f} ms = {processor_share:.1f} % of a memory-fed "
                f"epoch's; the most it can add when nothing overlaps",
            )
        )
    # the target: the pipeline as training uses it (make_dataset with dihedral augmentation)
    return rows, 100 * (epoch["epoch ours, dihedral"] - memory) / memory


def measure_prediction(
    settings: Settings, data_dir: Path, ids: list[str], work_dir: Path, model
) -> tuple[list[Row], float]:
    """images/s of one model.predict call per image vs predict_tta batched, with 1 and 8 views."""
    from hpa_utils import cache, predict

    images = np.array(
        cache.build_cache(
            data_dir, "train", ids, settings.train_size, "rgby", cache_dir=work_dir / "training", progress=False
        )
    )
    count = min(len(images), settings.predict_images)
    kernel_count = min(count, settings.kernel_predict_images)
    tta_count = min(count, settings.tta_images)
    log(f"prediction: {kernel_count} images one at a time, {count} batched, {tta_count} with 8 views")
    model.predict(images[:1], verbose=0)  # warm-up: builds the predict function
    predict.predict_tta(model, images[: settings.batch_size], views=8, batch_size=settings.batch_size, progress=False)

    reusable = reusable_predictor(model, images.shape[1:], images.dtype, views=1, batch_size=settings.batch_size)
    agreement = np.abs(
        reusable(images[:count])
        - predict.predict_tta(model, images[:count], views=1, batch_size=settings.batch_size, progress=False)
    ).max()

    def kernel():
        return timed(lambda: [model.predict(image[None], verbose=0) for image in images[:kernel_count]])

    variants = {
        "kernel one at a time": kernel,
        "ours batched": lambda: timed(
            predict.predict_tta, model, images[:count], views=1, batch_size=settings.batch_size, progress=False
        ),
        "ours 8-view TTA": lambda: timed(
            predict.predict_tta, model, images[:tta_count], views=8, batch_size=settings.batch_size, progress=False
        ),
        "predict_tta fixed cost per call": lambda: timed(
            predict.predict_tta, model, images[:1], views=1, batch_size=settings.batch_size, progress=False
        ),
        "proposal: function traced once": lambda: timed(reusable, images[:count]),
    }
    best = best_times(variants, settings.repeats)
    rate = {
        "kernel one at a time": kernel_count / best["kernel one at a time"],
        "ours batched": count / best["ours batched"],
        "ours 8-view TTA": tta_count / best["ours 8-view TTA"],
        "proposal: function traced once": count / best["proposal: function traced once"],
    }
    kernel_rate = rate["kernel one at a time"]
    fixed = best["predict_tta fixed cost per call"]
    rows = [
        Row(
            "kernel one at a time",
            kernel_rate,
            "images/s",
            "1.00x kernel",
            f"model.predict(image[None]) per image: {1000 / kernel_rate:.0f} ms per call",
        ),
        Row(
            "ours batched",
            rate["ours batched"],
            "images/s",
            ratio_text(rate["ours batched"], kernel_rate),
            f"predict.predict_tta views=1, {count} images, batch {settings.batch_size}",
        ),
        Row(
            "ours 8-view TTA",
            rate["ours 8-view TTA"],
            "images/s",
            ratio_text(rate["ours 8-view TTA"], kernel_rate),
            f"views=8, {tta_count} images: {8 * rate['ours 8-view TTA']:.1f} views/s, "
            f"{8 * rate['ours 8-view TTA'] / kernel_rate:.1f}x kernel per view",
        ),
        Row(
            "predict_tta fixed cost per call",
            fixed,
            "s/call",
            "",
            f"a 1-image call (tracing a new tf.function, the tf.data set-up): "
            f"{100 * fixed / best['ours batched']:.0f} % of the batched call above",
        ),
        Row(
            "proposal: function traced once",
            rate["proposal: function traced once"],
            "images/s",
            ratio_text(rate["proposal: function traced once"], kernel_rate),
            f"predict_tta's computation, its tf.function reused across calls; max |diff| {agreement:.1e}",
        ),
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
    print(
        f"machine: {platform.system()} {platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
        f"usable CPUs {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, "
        f"cv2 threads {cv2.getNumThreads()}, load average at start {load_at_start}"
    )
    print(f"versions: {versions()}")
    data_dir, ids = prepare_data(settings)
    print(
        f"data: {len(ids)} train samples, {settings.source_size} px PNG (Kaggle layout, synthetic.generate) "
        f"in {data_dir}"
    )
    print(
        f"sizes: loaders resize to {settings.load_size} px; training and prediction use ResNet50 at "
        f"{settings.train_size} px rgby, weights none; best of {settings.repeats} rounds "
        f"({settings.training_repeats} x {settings.train_batches} steps for training), kernel and ours in turn"
    )
    sys.stdout.flush()
    settings.data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work-", dir=settings.data_root) as work:
        work_dir = Path(work)
        loading_rows, loading = measure_loading(settings, data_dir, ids, work_dir)
        print_section(
            f"1. loading: samples/s, {settings.source_size} px PNG -> {settings.load_size} px rgby", loading_rows
        )
        print_section(
            f"1b. first pass breakdown ({min(len(ids), settings.breakdown_samples)} samples; "
            f"stages on 1 thread, then whole passes)",
            measure_breakdown(settings, data_dir, ids, work_dir),
        )
        print_section(
            "2. augmentation: ms per image (augment.augment_batch)", measure_augmentation(settings, data_dir, ids)
        )
        log("training: building ResNet50")
        model = build_small_model(settings)
        training_rows, overhead = measure_training(settings, data_dir, ids, work_dir, model)
        print_section(
            f"3. training: one epoch of ResNet50 {settings.train_size} px rgby, batch {settings.batch_size} "
            f"(model.train_on_batch, the feeds in turn step by step)",
            training_rows,
        )
        prediction_rows, prediction_ratio = measure_prediction(settings, data_dir, ids, work_dir, model)
        print_section(f"4. prediction: ResNet50 {settings.train_size} px rgby", prediction_rows)
    kernel = loading["kernel"]
    print()
    print(f"load average at end {load_average()}; took {time.perf_counter() - started:.0f} s")
    print(target_line("first pass", loading["first"] / kernel, "x", 2, at_least=True))
    print(target_line("cached passes", loading["cached"] / kernel, "x", 30, at_least=True))
    print(target_line("input pipeline overhead", overhead, " %", 5, at_least=False))  # dihedral, as trained
    print(target_line("batched prediction", prediction_ratio, "x", 10, at_least=True))
    return 0


def parse_settings(argv=None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--samples", type=int, help="synthetic train samples to measure on (default 200; 8 with --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, help="rounds per measurement, the best kept (default 3, 4 for training; 1 with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run (64 px PNGs, 32 px model) that checks the benchmark runs; its numbers mean nothing",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help=f"where the synthetic PNGs are generated once and reused (default {DEFAULT_DATA_ROOT})",
    )
    arguments = parser.parse_args(argv)
    settings = Settings.quick(arguments.data_root) if arguments.quick else Settings(data_root=arguments.data_root)
    for name in ("samples", "repeats"):
        value = getattr(arguments, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name} must be at least 1, got {value}")
            settings = dataclasses.replace(settings, **{name: value})
    if arguments.repeats is not None:
        settings = dataclasses.replace(settings, training_repeats=arguments.repeats)
    return settings


def main(argv=None) -> int:
    settings = parse_settings(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import: keep its C++ chatter out
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())

"""Loading: the kernel's loader vs our first pass and cached passes, and where a first pass's time goes."""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Row, Settings, Variant, log, ratio_text, timed, timed_cache_build, timed_in_turns
from benchmarks.public_kernel import (
    PNG_TAIL_BYTES,
    halve_then_resize,
    kernel_load_sample,
    proposed_load_sample,
)
from hpa_utils import dataset
from hpa_utils.dataset import COLORS, cache, png
from hpa_utils.training import inputs


@dataclasses.dataclass
class Context:
    """What the loading variants measure on."""

    settings: Settings
    data_dir: Path
    ids: list[str]
    work_dir: Path
    threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    streams: list = dataclasses.field(default_factory=list)  # the files' zlib streams (IDAT)
    pool: ThreadPoolExecutor | None = None
    batches: object = None  # inputs.make_dataset over a built cache
    paths: list = dataclasses.field(default_factory=list)  # [sample][channel] Path
    contents: list = dataclasses.field(default_factory=list)  # [sample][channel] file bytes
    decoded: list = dataclasses.field(default_factory=list)  # [sample][channel] decoded array
    halves: list = dataclasses.field(default_factory=list)  # [sample][channel] decoded at half size

    @property
    def size(self) -> int:
        return self.settings.load_size

    @property
    def count(self) -> int:
        return len(self.ids)


def _build(workers=None):
    return lambda context: timed_cache_build(context.data_dir, context.ids, context.size, context.work_dir, workers)


def _cached_passes(context: Context) -> float:
    def passes():
        for _ in range(context.settings.cached_passes):
            for _ in context.batches:
                pass

    return timed(passes) / context.settings.cached_passes


LOADING = (
    Variant(
        "kernel loader",
        lambda c: timed(lambda: [kernel_load_sample(c.data_dir, image_id, c.size) for image_id in c.ids]),
        "PIL per channel, np.stack, cv2.resize; 1 thread",
    ),
    Variant(
        "ours first pass",
        _build(),
        lambda c, best, name: f"cache.build_cache into a fresh folder, {c.threads} threads",
    ),
    Variant(
        "ours cached pass",
        _cached_passes,
        lambda c, best, name: f"inputs.make_dataset over the memmap, batch {c.settings.batch_size}, no augmentation",
    ),
    Variant(
        "zlib inflate ceiling",
        lambda c: timed(lambda: list(c.pool.map(zlib.decompress, c.streams))),
        lambda c, best, name: (
            f"IDAT bytes only, {c.threads} threads; "
            f"ours first pass = {100 * best[name] / best['ours first pass']:.0f} % of it"
        ),
    ),
)


def measure_loading(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> tuple[list[Row], dict]:
    """Kernel loader vs build_cache (first pass) vs make_dataset over the cache vs the zlib ceiling, samples/s.

    Returns the rows and {row name: samples/s}.
    """
    context = Context(settings, data_dir, ids, work_dir)
    log(
        f"loading: {context.count} samples, {settings.source_size} px PNG -> {context.size} px, "
        f"{settings.repeats} rounds"
    )
    files = [data_dir / "train" / f"{image_id}_{color}.png" for image_id in ids for color in COLORS]
    context.streams = [png.idat(path.read_bytes()) for path in files]  # also puts every file in the page cache
    cached = cache.build_cache(data_dir, "train", ids, context.size, "rgby", cache_dir=work_dir / "loading")
    context.batches = inputs.make_dataset(cached, batch_size=settings.batch_size)
    for _ in context.batches:  # the first iteration builds the pipeline's threads
        pass
    with ThreadPoolExecutor(max_workers=context.threads) as context.pool:
        best = timed_in_turns(LOADING, context, settings.repeats)
    rate = {name: context.count / seconds for name, seconds in best.items()}
    kernel = rate["kernel loader"]
    rows = [
        Row(
            variant.name,
            rate[variant.name],
            "samples/s",
            ratio_text(rate[variant.name], kernel),
            variant.describe(context, best),
        )
        for variant in LOADING
    ]
    return rows, rate


# --- where a first pass's time goes ---------------------------------------------------------------------


HALF_DECODE = cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_IGNORE_ORIENTATION


def _decode(data: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _pil_decode(context: Context, index: int):
    from PIL import Image

    return [np.array(Image.open(io.BytesIO(data))) for data in context.contents[index]]


def _pixel_difference(proposal: str, text: str):
    """A detail: ``text``, then how far the proposal's pixels are from load_sample's."""

    def detail(context: Context, best: dict, name: str) -> str:
        differences = np.concatenate(
            [
                np.abs(
                    proposed_load_sample(context.data_dir, image_id, context.size, proposal).astype(np.int16)
                    - dataset.load_sample(context.data_dir, "train", image_id, "rgby", context.size)
                ).ravel()
                for image_id in context.ids
            ]
        )
        return f"{text}; pixels vs load_sample: mean |diff| {differences.mean():.2f}, max {int(differences.max())}"

    return detail


# Per sample, on one thread: run(context, index) does one sample's share of the stage.
STAGES = (
    Variant(
        "find 4 files (image_path)",
        lambda c, i: [dataset.image_path(c.data_dir, "train", c.ids[i], color) for color in COLORS],
    ),
    Variant("read 4 files", lambda c, i: [path.read_bytes() for path in c.paths[i]]),
    Variant(
        "completeness check",
        lambda c, i: [data.find(b"IEND", max(0, len(data) - PNG_TAIL_BYTES)) for data in c.contents[i]],
    ),
    Variant("cv2.imdecode", lambda c, i: [_decode(data) for data in c.contents[i]], "full size (libpng via cv2)"),
    Variant(
        "cv2.imdecode at half size",
        lambda c, i: [_decode(data, HALF_DECODE) for data in c.contents[i]],
        "IMREAD_REDUCED_GRAYSCALE_2: ours without pywuffs (decode, then cv2 halves 2x2 blocks)",
    ),
    Variant(
        "Wuffs decode",
        lambda c, i: [png.decode_grayscale(data) for data in c.contents[i]],
        "ours: dataset.png with pywuffs, full size, checksums verified",
    ),
    Variant("PIL decode (kernel)", _pil_decode, "the kernel's decoder"),
    Variant(
        "zlib inflate only",
        lambda c, i: [zlib.decompress(stream) for stream in c.streams[i]],
        "the part of decoding no decoder can skip",
    ),
    Variant(
        "resize INTER_AREA per channel",
        lambda c, i: [cv2.resize(array, (c.size, c.size), interpolation=cv2.INTER_AREA) for array in c.decoded[i]],
        lambda c, best, name: f"one step, {c.settings.source_size} -> {c.size} px",
    ),
    Variant(
        "resize halve, then INTER_AREA",
        lambda c, i: [halve_then_resize(array, c.size) for array in c.decoded[i]],
        "after a full decode (ours with Wuffs): INTER_AREA 2x steps, then INTER_AREA",
    ),
    Variant(
        "resize after the half decode",
        lambda c, i: [halve_then_resize(array, c.size) for array in c.halves[i]],
        lambda c, best, name: f"ours without pywuffs: INTER_AREA {c.settings.source_size // 2} -> {c.size} px",
    ),
    Variant(
        "np.stack + INTER_LINEAR (kernel)",
        lambda c, i: cv2.resize(np.stack(c.decoded[i], axis=-1), (c.size, c.size)),
        "the kernel's",
    ),
    Variant(
        "load_sample total",
        lambda c, i: dataset.load_sample(c.data_dir, "train", c.ids[i], "rgby", c.size),
        lambda c, best, name: "ours (Wuffs)" if png.available() else "ours (cv2 half decode: pywuffs not installed)",
    ),
    Variant(
        "load_sample, cv2 full decode",
        lambda c, i: proposed_load_sample(c.data_dir, c.ids[i], c.size, "cv2 full decode"),
        _pixel_difference("cv2 full decode", "the first way"),
    ),
    Variant(
        "load_sample, cv2 half decode",
        lambda c, i: proposed_load_sample(c.data_dir, c.ids[i], c.size, "cv2 half decode"),
        _pixel_difference("cv2 half decode", "the way before Wuffs"),
    ),
    Variant(
        "load_sample, Wuffs",
        lambda c, i: proposed_load_sample(c.data_dir, c.ids[i], c.size, "wuffs"),
        _pixel_difference("wuffs", "as the Wuffs pass below runs it"),
    ),
    Variant("kernel loader total", lambda c, i: kernel_load_sample(c.data_dir, c.ids[i], c.size)),
)


def _inflate(workers):
    def run(context: Context) -> float:
        flat = [stream for sample in context.streams for stream in sample]
        with ThreadPoolExecutor(max_workers=workers(context)) as pool:
            return timed(lambda: list(pool.map(zlib.decompress, flat)))

    return run


def _proposal_pass(proposal: str):
    """A pass as build_cache's pool runs it (threads, a fresh memmap, flushed), loading with ``proposal``."""

    def run(context: Context) -> float:
        with tempfile.TemporaryDirectory(dir=context.work_dir) as fresh:
            shape = (context.count, context.size, context.size, 4)
            array = np.memmap(Path(fresh) / "proposal.u8", dtype=np.uint8, mode="w+", shape=shape)

            def load(index):
                array[index] = proposed_load_sample(context.data_dir, context.ids[index], context.size, proposal)

            def build():
                with ThreadPoolExecutor(max_workers=context.threads) as pool:
                    list(pool.map(load, range(context.count)))
                array.flush()

            seconds = timed(build)
            array = None  # close the memmap before its folder goes
            return seconds

    return run


def _versus(reference: str, text):
    """A detail: samples/s relative to the ``reference`` row, then ``text(context)``."""
    return lambda c, best, name: f"{best[reference] / best[name]:.2f}x 1 thread; {text(c)}"


# Whole passes over the samples, samples/s, each compared with its one-thread reference.
PASSES = (
    Variant(
        "zlib inflate, 1 thread",
        _inflate(lambda c: 1),
        _versus("zlib inflate, 1 thread", lambda c: "the reference for the next line"),
    ),
    Variant(
        "zlib inflate, all threads",
        _inflate(lambda c: c.threads),
        _versus("zlib inflate, 1 thread", lambda c: f"{c.threads} threads: the parallelism this machine gives now"),
    ),
    Variant(
        "build_cache, 1 worker",
        _build(workers=1),
        _versus("build_cache, 1 worker", lambda c: "the reference for the next lines"),
    ),
    Variant(
        "build_cache, all workers",
        _build(),
        _versus(
            "build_cache, 1 worker",
            lambda c: f"{c.threads} threads; ours: {'Wuffs' if png.available() else 'cv2 half decode'}",
        ),
    ),
    Variant(
        "pass, cv2 full decode",
        _proposal_pass("cv2 full decode"),
        _versus("build_cache, 1 worker", lambda c: f"{c.threads} threads: the first way"),
    ),
    Variant(
        "pass, cv2 half decode",
        _proposal_pass("cv2 half decode"),
        _versus("build_cache, 1 worker", lambda c: f"{c.threads} threads: the way before Wuffs"),
    ),
    Variant(
        "pass, Wuffs (ours)",
        _proposal_pass("wuffs"),
        _versus("build_cache, 1 worker", lambda c: f"{c.threads} threads: load_channel with pywuffs"),
    ),
)


def _breakdown_context(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> Context:
    context = Context(settings, data_dir, ids[: settings.breakdown_samples], work_dir)
    context.paths = [
        [dataset.image_path(data_dir, "train", image_id, color) for color in COLORS] for image_id in context.ids
    ]
    context.contents = [[path.read_bytes() for path in sample] for sample in context.paths]
    context.decoded = [[_decode(data) for data in sample] for sample in context.contents]
    context.halves = [[_decode(data, HALF_DECODE) for data in sample] for sample in context.contents]
    context.streams = [[png.idat(data) for data in sample] for sample in context.contents]
    return context


def available(variants) -> list[Variant]:
    """The variants this machine can run: the Wuffs rows only where pywuffs is installed."""
    return [variant for variant in variants if png.available() or "Wuffs" not in variant.name]


def measure_breakdown(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path) -> list[Row]:
    """Where a sample's load time goes (1 thread, ms per sample), and how build_cache scales with threads."""
    context = _breakdown_context(settings, data_dir, ids, work_dir)
    log(f"first-pass breakdown: {context.count} samples" + ("" if png.available() else "; pywuffs not installed"))
    stages, passes = available(STAGES), available(PASSES)
    timed_stages = [
        dataclasses.replace(
            variant, run=lambda c, variant=variant: timed(lambda: [variant.run(c, index) for index in range(c.count)])
        )
        for variant in stages
    ]
    best = timed_in_turns(timed_stages + passes, context, settings.repeats)
    milliseconds = {variant.name: 1000 * best[variant.name] / context.count for variant in stages}
    total = milliseconds["load_sample total"]
    rows = [
        Row(
            variant.name,
            milliseconds[variant.name],
            "ms/sample",
            f"{100 * milliseconds[variant.name] / total:.0f} % of ours",
            variant.describe(context, best),
        )
        for variant in stages
    ]
    kernel = context.count / best["kernel loader total"]
    for variant in passes:
        rate = context.count / best[variant.name]
        rows.append(Row(variant.name, rate, "samples/s", ratio_text(rate, kernel), variant.describe(context, best)))
    return rows

"""What every benchmark shares: the settings, a table row, timing in turns, number formats, the machine, the data."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import math
import os
import platform
import re
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2

from hpa_utils.system.environment import REPO_ROOT

DEFAULT_DATA_ROOT = REPO_ROOT / "data" / "bench"
NAME_WIDTH = 42
DEFAULT_BACKBONE = "resnet50"  # the public kernel's: what the training, prediction and GPU numbers are about
# How the tables name each of models.BACKBONES (``--backbone``); "small" makes a test's tiny run quick.
BACKBONE_LABELS = {
    "resnet50": "ResNet50",
    "inceptionv3": "InceptionV3",
    "densenet121": "DenseNet121",
    "efficientnet_lite0": "EfficientNet-Lite0",
    "small": "small CNN",
}


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
    backbone: str = DEFAULT_BACKBONE  # the model the training and prediction sections train and call

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


def backbone_label(backbone: str) -> str:
    """How the tables name ``backbone``: "ResNet50" for "resnet50"."""
    return BACKBONE_LABELS.get(backbone, backbone)


def add_backbone_argument(parser) -> None:
    """``--backbone``: the model to train (default ResNet50; "small" for a quick check of the rows)."""
    parser.add_argument(
        "--backbone",
        choices=sorted(BACKBONE_LABELS),
        help=f"the backbone the model is built with (default {DEFAULT_BACKBONE}; small: a quick check of the rows)",
    )


@dataclasses.dataclass
class Row:
    """One measured line of the table: a value with its unit, and how it compares."""

    name: str
    value: float
    unit: str
    comparison: str = ""
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One measured variant, said once: its row name, what it runs, and what its row says about it.

    ``run`` takes the section's context (the data it measures on) and returns seconds; ``detail`` is text,
    or a function of the context, the best seconds of every variant and the name, for a detail that needs
    measured values.
    """

    name: str
    run: Callable
    detail: str | Callable = ""
    unit: str = ""  # where a section's rows differ in unit

    def describe(self, context, best: dict) -> str:
        """The row's detail: the text, or ``detail(context, best, name)``."""
        return self.detail(context, best, self.name) if callable(self.detail) else self.detail


def timed_in_turns(variants, context, repeats: int) -> dict[str, float]:
    """``best_times`` over Variants: {name: the smallest seconds ``variant.run(context)`` returned}."""
    return best_times({variant.name: (lambda variant=variant: variant.run(context)) for variant in variants}, repeats)


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


def not_measured_line(name: str, unit: str, goal: float, at_least: bool, reason: str) -> str:
    """``target <name>: not measured (goal <goal>; <reason>)``: a goal this run cannot measure, and no number."""
    sign = ">=" if at_least else "<"
    return f"target {name}: not measured (goal {sign} {format_number(goal)}{unit}; {reason})"


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
    """The seconds one call of ``function`` takes."""
    start = time.perf_counter()
    function(*arguments, **keywords)
    return time.perf_counter() - start


def ratio_text(ours: float, kernel: float) -> str:
    return f"{ours / kernel:.2f}x kernel" if ours / kernel < 10 else f"{ours / kernel:.0f}x kernel"


def versions() -> str:
    names = {
        "numpy": "numpy",
        "opencv": "opencv-python-headless",
        "Pillow": "pillow",
        "tensorflow": "tensorflow",
        "keras": "keras",
        "imgaug": "imgaug",
        "pywuffs": "pywuffs",
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
    from hpa_utils import dataset
    from hpa_utils.dataset import synthetic

    with contextlib.redirect_stdout(sys.stderr):
        data_dir = synthetic.ensure_dataset(
            settings.data_root, n_train=settings.samples, n_test=1, image_size=settings.source_size, seed=0
        )
    ids = dataset.read_train_labels(data_dir)["Id"].tolist()
    return Path(data_dir), ids


def timed_cache_build(data_dir: Path, ids: list[str], image_size: int, work_dir: Path, workers=None) -> float:
    """Seconds of ``cache.build_cache`` (rgby) of ``ids`` into a fresh folder under ``work_dir``: a first pass."""
    import tempfile

    from hpa_utils.dataset import cache

    with tempfile.TemporaryDirectory(dir=work_dir) as fresh:
        return timed(
            cache.build_cache,
            data_dir,
            "train",
            ids,
            image_size,
            "rgby",
            cache_dir=fresh,
            workers=workers,
        )


def print_section(title: str, rows: list[Row]) -> None:
    print()
    print(f"## {title}")
    print(f"{'':<{NAME_WIDTH}} {'value':>9} {'unit':<10} {'compared':<16} how")
    for row in rows:
        print(format_row(row))
    sys.stdout.flush()


def replace_block(content: str, marker: str, body: str, where) -> str:
    """``content`` with ``body`` between its ``<!-- marker -->`` and ``<!-- /marker -->`` (what a command writes into a
    README); ValueError naming ``where`` when the block is missing."""
    pattern = re.compile(rf"(<!-- {marker} -->)(.*?)(<!-- /{marker} -->)", re.DOTALL)
    if not pattern.search(content):
        raise ValueError(f"{where}: no <!-- {marker} --> ... <!-- /{marker} --> block to write")
    return pattern.sub(lambda match: match.group(1) + body + match.group(3), content)

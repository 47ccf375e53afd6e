"""Throughput of loading, augmentation, training input and prediction, side by side with the public kernel's way.

Run as ``python -m benchmarks.run`` (``make bench``). Every ratio is taken in one run on the same
synthetic 512 px PNGs in the Kaggle layout (generated once under ``data/bench`` and reused); the
kernel's way and ours run in turn, their order rotated every round, and the best of ``--repeats``
rounds is kept, because the machine is shared and noisy. Training feeds take turns step by step
and an epoch is counted from the median step. The table ends with one line per target.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks import backends, gpu
from benchmarks.common import (
    DEFAULT_DATA_ROOT,
    Settings,
    add_backbone_argument,
    backbone_label,
    load_average,
    log,
    not_measured_line,
    prepare_data,
    print_section,
    target_line,
    versions,
)
from benchmarks.loading import LOADING, PASSES, STAGES, measure_breakdown, measure_loading
from benchmarks.prediction import PREDICTIONS, measure_prediction
from benchmarks.streaming import STREAMING, measure_streaming
from benchmarks.training import AUGMENTATIONS, TRAINING_ROWS, build_small_model, measure_augmentation, measure_training

# Every row the table prints, in order (the test checks each one has a number): each section's one list.
ROW_NAMES = (
    tuple(variant.name for variant in LOADING + STAGES + PASSES + STREAMING + AUGMENTATIONS)
    + TRAINING_ROWS
    + tuple(variant.name for variant in PREDICTIONS)
)
# The goals of this run, then those only `python -m benchmarks.gpu` measures (on a GPU machine).
TARGET_NAMES = ("first pass", "cached passes", "input pipeline overhead", "batched prediction") + tuple(
    name for name, _, _ in gpu.goals(gpu.Settings())
)


def print_header(settings: Settings) -> tuple[Path, list[str], str]:
    """What the table is measured on: the machine, the versions, the data (generated once) and the sizes.
    Returns the data folder, its Ids and the model's name."""
    print("# HPA input and prediction benchmarks (python -m benchmarks.run)")
    print(
        f"machine: {platform.system()} {platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
        f"usable CPUs {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, "
        f"cv2 threads {cv2.getNumThreads()}, load average at start {load_average()}"
    )
    print(f"versions: {versions()}")
    data_dir, ids = prepare_data(settings)
    print(
        f"data: {len(ids)} train samples, {settings.source_size} px PNG (Kaggle layout, synthetic.generate) "
        f"in {data_dir}"
    )
    model_name = backbone_label(settings.backbone)
    print(
        f"sizes: loaders resize to {settings.load_size} px; training and prediction use {model_name} at "
        f"{settings.train_size} px rgby, weights none; best of {settings.repeats} rounds "
        f"({settings.training_repeats} x {settings.train_batches} steps for training), kernel and ours in turn"
    )
    sys.stdout.flush()
    return data_dir, ids, model_name


def run(settings: Settings) -> int:
    """Measure everything and print the table; returns the exit code (0, also when a target is missed)."""
    started = time.perf_counter()
    data_dir, ids, model_name = print_header(settings)
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
            f"1c. streaming (CACHE=stream) against the cache: samples/s, {settings.source_size} px PNG read at "
            f"{settings.source_size} px rgby",
            measure_streaming(settings, data_dir, ids, work_dir),
        )
        print_section(
            "2. augmentation: ms per image (augment.augment_batch; inputs.random_dihedral)",
            measure_augmentation(settings, data_dir, ids),
        )
        log(f"training: building {model_name}")
        model = build_small_model(settings)
        training_rows, overhead = measure_training(settings, data_dir, ids, work_dir, model)
        print_section(
            f"3. training: one epoch of {model_name} {settings.train_size} px rgby, batch {settings.batch_size} "
            f"(model.train_on_batch, the feeds in turn step by step)",
            training_rows,
        )
        prediction_rows, prediction_ratio = measure_prediction(settings, data_dir, ids, work_dir, model)
        print_section(f"4. prediction: {model_name} {settings.train_size} px rgby", prediction_rows)
    shapes = (("small", 32),) if settings.samples < 20 else backends.SHAPES  # --quick: one tiny row
    rounds = 1 if len(shapes) == 1 else 2
    print(f"\n## 5. Keras backends: a training step on JAX against TensorFlow (fresh processes, best of {rounds})")
    print("\n".join(backends.format_rows(backends.compare(shapes, rounds=rounds), 16)))
    kernel = loading["kernel loader"]
    print()
    print(f"load average at end {load_average()}; took {time.perf_counter() - started:.0f} s")
    print(target_line("first pass", loading["ours first pass"] / kernel, "x", 2, at_least=True))
    print(target_line("cached passes", loading["ours cached pass"] / kernel, "x", 30, at_least=True))
    print(target_line("input pipeline overhead", overhead, " %", 5, at_least=False))  # dihedral, as trained
    print(target_line("batched prediction", prediction_ratio, "x", 10, at_least=True))
    print_gpu_goals()
    return 0


def print_gpu_goals() -> None:
    """The GPU check's goals, each ``not measured``: this run trains on the CPU (a number here would be a guess)."""
    import tensorflow as tf

    reason = (
        "make bench does not run the GPU check: python -m benchmarks.gpu does"
        if tf.config.list_physical_devices("GPU")
        else "no GPU on this machine; python -m benchmarks.gpu on one measures it"
    )
    for name, unit, goal in gpu.goals(gpu.Settings()):
        print(not_measured_line(name, unit, goal, at_least=True, reason=reason))


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
    add_backbone_argument(parser)
    arguments = parser.parse_args(argv)
    settings = Settings.quick(arguments.data_root) if arguments.quick else Settings(data_root=arguments.data_root)
    if arguments.backbone is not None:
        settings = dataclasses.replace(settings, backbone=arguments.backbone)
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

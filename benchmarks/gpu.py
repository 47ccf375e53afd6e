"""GPU check: ResNet50 training images/s with mixed precision, fed by our input pipeline vs by in-memory tensors.

Run as ``python -m benchmarks.gpu`` on a machine with a GPU (a few minutes, no internet: weights
"none", synthetic data). For each image size it trains ResNet50 (rgby; ``--backbone`` another) with
``keras.mixed_precision`` "mixed_float16" twice in turn: fed by ``cache.build_cache`` +
``inputs.make_dataset`` with dihedral augmentation (what the notebooks do), and fed the same
batches again and again from memory (the fastest feed there is). The ratio is the input pipeline's
cost on that machine. It also times ``cache.build_cache`` on all cores against one. Without a GPU
it says so and runs the tiny CPU check of ``--quick``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common as bench

PIPELINE_GOAL = 0.9  # pipeline-fed training images/s at least this share of memory-fed
CORES_GOAL = 0.7  # build_cache on all cores at least this many times the cores faster than on one


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and counts of one GPU check (the defaults, or the tiny ``--quick`` ones)."""

    samples: int = 256  # synthetic train samples, generated at source_size
    source_size: int = 512
    image_sizes: tuple[int, ...] = (224, 512)
    batch_size: int = 32
    steps: int = 40  # timed training steps per round
    warmup_steps: int = 8  # untimed steps first (traces and compiles the train step)
    repeats: int = 3
    data_root: Path = bench.DEFAULT_DATA_ROOT
    quick: bool = False
    backbone: str = bench.DEFAULT_BACKBONE

    @classmethod
    def tiny(cls, data_root: Path = bench.DEFAULT_DATA_ROOT) -> "Settings":
        """What ``--quick`` and the no-GPU check run: small enough for a CPU, numbers meaningless."""
        return cls(
            samples=8,
            source_size=64,
            image_sizes=(32, 64),
            batch_size=4,
            steps=2,
            warmup_steps=1,
            repeats=1,
            data_root=data_root,
            quick=True,
        )


def row_names(settings: Settings) -> list[str]:
    """The rows the table prints for these settings, in order (the test checks each one has a number)."""
    names = []
    for size in settings.image_sizes:
        names += [f"{size} px from memory", f"{size} px ours, dihedral"]
    return names + ["cache build, 1 worker", "cache build, all workers"]


def goals(settings: Settings) -> list[tuple[str, str, float]]:
    """(name, unit, goal) of each goal this check measures, in the order printed; every goal is a minimum."""
    pipeline = [(f"GPU pipeline-fed vs memory-fed at {size} px", "x", PIPELINE_GOAL) for size in settings.image_sizes]
    return pipeline + [("GPU machine cache build, all cores vs one", " x cores", CORES_GOAL)]


def describe_devices() -> tuple[list, str]:
    """The GPUs TensorFlow sees and a line naming them (name and compute capability)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return [], "no GPU"
    described = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        capability = f", compute capability {capability[0]}.{capability[1]}" if capability else ""
        described.append(f"{gpu.name}: {details.get('device_name', 'unknown GPU')}{capability}")
    return gpus, "; ".join(described)


def _memory_feed(images, targets, batch: int):
    """The same batches from tensors in memory, repeated: the feed that costs the GPU nothing."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.array(images), targets)).batch(batch, drop_remainder=True)
    return dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)


def measure_size(
    settings: Settings, data_dir: Path, ids: list[str], targets: np.ndarray, image_size: int, work_dir: Path
) -> tuple[list[bench.Row], float]:
    """Training images/s at ``image_size`` fed by make_dataset (cache, dihedral) and from memory, and their ratio."""
    import keras
    import tensorflow as tf

    from hpa_utils import models
    from hpa_utils.dataset import cache
    from hpa_utils.training import fitting, inputs

    batch = settings.batch_size
    bench.log(f"gpu: caching {len(ids)} samples at {image_size} px")
    images = cache.build_cache(data_dir, "train", ids, image_size, "rgby", cache_dir=work_dir)
    policy = keras.mixed_precision.global_policy().name
    bench.log(f"gpu: building {bench.backbone_label(settings.backbone)} {image_size} px rgby, policy {policy}")
    keras.backend.clear_session()
    model = models.build_model(settings.backbone, image_size, "rgby", "none")
    model = fitting.compile_model(model, learning_rate=1e-4)
    in_memory = min(len(ids) // batch, settings.steps) * batch
    memory = _memory_feed(images[:in_memory], targets[:in_memory], batch)
    rows = np.arange(in_memory)  # whole batches only: a short last one would trace the step again
    ours = inputs.make_dataset(images, targets, batch, shuffle=True, augmentation="dihedral", indices=rows).repeat()
    feeds = {f"{image_size} px from memory": memory, f"{image_size} px ours, dihedral": ours}
    for feed in feeds.values():
        model.fit(feed, epochs=1, steps_per_epoch=settings.warmup_steps, verbose=0)
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")
    variants = {
        name: (lambda feed=feed: bench.timed(model.fit, feed, epochs=1, steps_per_epoch=settings.steps, verbose=0))
        for name, feed in feeds.items()
    }
    best = bench.best_times(variants, settings.repeats)
    peak = ""
    if tf.config.list_physical_devices("GPU"):
        peak = f", peak GPU memory {tf.config.experimental.get_memory_info('GPU:0')['peak'] / 2**30:.1f} GiB"
    rate = {name: settings.steps * batch / seconds for name, seconds in best.items()}
    memory_rate = rate[f"{image_size} px from memory"]
    ours_rate = rate[f"{image_size} px ours, dihedral"]
    ratio = ours_rate / memory_rate
    rows = [
        bench.Row(
            f"{image_size} px from memory",
            memory_rate,
            "images/s",
            "baseline",
            f"the same {in_memory // batch} batches repeated from memory{peak}",
        ),
        bench.Row(
            f"{image_size} px ours, dihedral",
            ours_rate,
            "images/s",
            f"{ratio:.2f}x memory",
            "cache memmap + inputs.make_dataset(augmentation='dihedral', shuffle=True)",
        ),
    ]
    model = None  # the closures above keep it otherwise; the next size builds its own
    return rows, ratio


def measure_cache_build(settings: Settings, data_dir: Path, ids: list[str], work_dir: Path):
    """build_cache on one worker and on all cores, into fresh folders, in turn; rows and the speed-up per core."""

    cores = os.cpu_count() or 1  # what build_cache's default workers=None uses
    image_size = settings.image_sizes[0]
    bench.log(f"gpu: cache build of {len(ids)} samples at {image_size} px, 1 worker and {cores}")

    def build(workers):
        return lambda: bench.timed_cache_build(data_dir, ids, image_size, work_dir, workers)

    best = bench.best_times(
        {"cache build, 1 worker": build(1), "cache build, all workers": build(None)}, settings.repeats
    )
    speedup = best["cache build, 1 worker"] / best["cache build, all workers"]
    one, every = (len(ids) / best[name] for name in ("cache build, 1 worker", "cache build, all workers"))
    rows = [
        bench.Row("cache build, 1 worker", one, "samples/s", "", "the reference"),
        bench.Row(
            "cache build, all workers",
            every,
            "samples/s",
            f"{speedup:.2f}x 1 worker",
            f"{cores} workers (build_cache's default): {speedup / cores:.2f} x cores",
        ),
    ]
    return rows, speedup / cores


def run_check(settings: Settings, device_line: str) -> list[float]:
    """Measure every image size and the cache build and print the tables; returns the measured value of each
    of ``goals(settings)``, in order."""
    import keras

    from hpa_utils import dataset
    from hpa_utils.dataset import labels, synthetic

    with contextlib.redirect_stdout(sys.stderr):
        data_dir = Path(
            synthetic.ensure_dataset(
                settings.data_root, n_train=settings.samples, n_test=1, image_size=settings.source_size, seed=0
            )
        )
    frame = dataset.read_train_labels(data_dir)
    ids = frame["Id"].tolist()
    targets = labels.to_multi_hot(frame["labels"].tolist(), dtype=np.float32)
    print(f"data: {len(ids)} synthetic train samples, {settings.source_size} px PNG in {data_dir}")
    print(
        f"model: {bench.backbone_label(settings.backbone)} rgby, weights none, batch {settings.batch_size}, "
        f"{settings.steps} timed steps per round, best of {settings.repeats} rounds, the two feeds in turn"
    )
    sys.stdout.flush()
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    measured = []
    settings.data_root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="gpu-", dir=settings.data_root) as work:
            for image_size in settings.image_sizes:
                rows, ratio = measure_size(settings, data_dir, ids, targets, image_size, Path(work))
                measured.append(ratio)
                name = bench.backbone_label(settings.backbone)
                bench.print_section(f"{name} {image_size} px rgby, mixed_float16, {device_line}", rows)
            rows, per_core = measure_cache_build(settings, data_dir, ids, Path(work))
            measured.append(per_core)
            bench.print_section(
                f"cache build: {len(ids)} samples at {settings.image_sizes[0]} px, all cores vs one", rows
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return measured


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run that also works on a CPU (for the test)")
    parser.add_argument("--samples", type=int, help="synthetic samples (default 256; 8 with --quick)")
    parser.add_argument("--steps", type=int, help="timed training steps per round (default 40)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 32)")
    parser.add_argument("--repeats", type=int, help="rounds per measurement, the best kept (default 3)")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=bench.DEFAULT_DATA_ROOT,
        help=f"where the synthetic PNGs are generated once and reused (default {bench.DEFAULT_DATA_ROOT})",
    )
    bench.add_backbone_argument(parser)
    arguments = parser.parse_args(argv)
    for name in ("samples", "steps", "batch_size", "repeats"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return arguments


def settings_for(arguments, tiny: bool) -> Settings:
    settings = Settings.tiny(arguments.data_root) if tiny else Settings(data_root=arguments.data_root)
    for name in ("samples", "steps", "batch_size", "repeats", "backbone"):
        value = getattr(arguments, name)
        if value is not None:
            settings = dataclasses.replace(settings, **{name: value})
    return settings


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import: keep its C++ chatter out
    started = time.perf_counter()
    import tensorflow as tf

    gpus, device_line = describe_devices()
    model_name = bench.backbone_label(arguments.backbone or bench.DEFAULT_BACKBONE)
    print(
        f"# GPU check: {model_name} training throughput, our input pipeline vs in-memory tensors "
        "(python -m benchmarks.gpu)"
    )
    print(
        f"machine: {platform.system()} {platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
        f"load average at start {bench.load_average()}; devices: {device_line}"
    )
    print(f"versions: {bench.versions()}; tensorflow built with CUDA: {tf.test.is_built_with_cuda()}")
    tiny = arguments.quick
    if not gpus:
        if not arguments.quick:
            print(
                "no GPU found (tf.config.list_physical_devices('GPU') is empty): running the short CPU-only check "
                "instead; its numbers are not GPU figures"
            )
        tiny = True
    settings = settings_for(arguments, tiny)
    measured = run_check(settings, device_line)
    print()
    print(f"load average at end {bench.load_average()}; took {time.perf_counter() - started:.0f} s")
    for (name, unit, goal), value in zip(goals(settings), measured):
        print(bench.target_line(name, value, unit, goal, at_least=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

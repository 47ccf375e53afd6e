"""How fast the embedded dataset is generated: ``python -m benchmarks.synthetic [--samples 1000] [--size 512]``.

Times ``synthetic.generate`` writing the samples in the Kaggle layout (rendering and PNG writing, on every
core) into a temporary folder under data/bench, and one sample's rendering on one thread, split into its
parts; ends with the target line (1,000 samples at 512 px well under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from benchmarks.common import DEFAULT_DATA_ROOT, load_average, target_line
from hpa_utils.dataset import synthetic

GOAL_SECONDS_PER_1000 = 60.0


def render_seconds(samples: int, size: int) -> float:
    """Seconds per sample of ``render_sample`` alone on this thread (label sets drawn as the generator does)."""
    label_sets = synthetic.sample_label_sets(samples, np.random.default_rng(0), 0)
    started = time.perf_counter()
    for index, labels in enumerate(label_sets):
        synthetic.render_sample(labels, size, np.random.default_rng([0, index]))
    return (time.perf_counter() - started) / samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000, help="train samples written (default 1000)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default every core)")
    arguments = parser.parse_args(argv)
    workers = arguments.workers or os.cpu_count() or 1
    print(f"# embedded dataset generation (python -m benchmarks.synthetic), load average {load_average()}")
    DEFAULT_DATA_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synthetic-", dir=DEFAULT_DATA_ROOT) as work:
        started = time.perf_counter()
        synthetic.generate(
            f"{work}/data", arguments.samples, 1, image_size=arguments.size, workers=workers, progress=False
        )
        seconds = time.perf_counter() - started
    one_thread = render_seconds(min(arguments.samples, 50), arguments.size)
    per_1000 = seconds / (arguments.samples + 1) * 1000
    print(
        f"generate: {arguments.samples} + 1 samples at {arguments.size} px, {workers} workers: {seconds:.1f} s "
        f"({(arguments.samples + 1) / seconds:.1f} samples/s; {per_1000:.1f} s per 1,000)"
    )
    print(f"render_sample alone, 1 thread: {one_thread * 1000:.1f} ms per sample (PNG writing is the rest)")
    print(f"load average at end {load_average()}")
    name = f"generation of 1,000 samples at {arguments.size} px"
    print(target_line(name, per_1000, " s", GOAL_SECONDS_PER_1000, at_least=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

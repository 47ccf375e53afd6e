"""A training step on Keras' JAX backend against TensorFlow's, side by side: ``python -m benchmarks.backends``.

A process runs one backend, so each measurement is a fresh process (``STEP_SCRIPT``): it builds the model as the
notebooks do (RGBY, weights none), compiles it, trains a few steps to trace and compile, then times ``--steps``
steps on in-memory uint8 batches. The backends take turns, their order rotated every round, and each keeps its best
round: the machine is shared and noisy. Prints ms per step for each and the JAX/TensorFlow ratio (below 1: JAX is
faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from hpa_utils.system.environment import REPO_ROOT

BACKENDS = ("tensorflow", "jax")
SHAPES = (("small", 64), ("small", 128), ("resnet50", 64), ("resnet50", 128))  # make bench's rows on a CPU
STEP_SCRIPT = """
import json, sys, time
import numpy as np
from hpa_utils.system import hardware
from hpa_utils import models
from hpa_utils.training import fitting
backbone, size, batch, steps, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
machine = hardware.prepare(precision, batch_size=batch)
with machine.scope():
    model = models.build_model(backbone, size, "rgby", "none")
fitting.compile_model(model, 1e-4)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (batch, size, size, 4), dtype=np.uint8)
targets = (rng.random((batch, 28)) < 0.1).astype("float32")
for _ in range(2):  # traces and compiles the step
    model.train_on_batch(images, targets)
started = time.perf_counter()
for _ in range(steps):
    loss = model.train_on_batch(images, targets)
seconds = (time.perf_counter() - started) / steps
json.dump({"seconds": seconds, **machine.record()}, sys.stdout)
"""


def step_seconds(
    backend: str, backbone: str, size: int, *, batch: int = 16, steps: int = 5, precision: str = "off"
) -> dict:
    """One process on ``backend``: the seconds of one training step of ``backbone`` at ``size`` px, and its device."""
    command = [sys.executable, "-c", STEP_SCRIPT, backbone, str(size), str(batch), str(steps), precision]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if result.returncode:
        raise RuntimeError(f"{backend} {backbone} {size} px failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(shapes=SHAPES, *, batch: int = 16, steps: int = 5, rounds: int = 2, precision: str = "off") -> list[dict]:
    """For each (backbone, size): both backends' best ms per step over ``rounds`` rounds in turns, and the ratio."""
    rows = []
    for backbone, size in shapes:
        best = {backend: float("inf") for backend in BACKENDS}
        for round_number in range(rounds):
            order = BACKENDS if round_number % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                measured = step_seconds(backend, backbone, size, batch=batch, steps=steps, precision=precision)
                best[backend] = min(best[backend], measured["seconds"])
        rows.append(
            {"backbone": backbone, "size": size, **{f"{b} ms": 1000 * best[b] for b in BACKENDS}}
            | {"jax / tensorflow": best["jax"] / best["tensorflow"]}
        )
    return rows


def format_rows(rows: list[dict], batch: int) -> list[str]:
    lines = [f"{'training step (batch ' + str(batch) + ')':<32} {'TensorFlow':>11} {'JAX':>9} {'JAX/TF':>7}"]
    for row in rows:
        name = f"{row['backbone']} {row['size']} px"
        lines.append(
            f"{name:<32} {row['tensorflow ms']:>8.0f} ms {row['jax ms']:>6.0f} ms {row['jax / tensorflow']:>7.2f}"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small backbone at 32 px, one round (for the test)")
    arguments = parser.parse_args(argv)
    shapes, rounds = ((("small", 32),), 1) if arguments.quick else (SHAPES, 2)
    print("# a training step, Keras on JAX against Keras on TensorFlow, this CPU (python -m benchmarks.backends)")
    print("\n".join(format_rows(compare(shapes, rounds=rounds), 16)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

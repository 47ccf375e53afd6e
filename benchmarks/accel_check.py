"""The prepared check for a lent accelerator (a GPU, or a TPU): ``make accel-check``, at most about 8 minutes.

On a GPU or TPU it measures, each in a fresh process: a training step of ResNet50 (RGBY) at each stage's full shape
(224 px, batch 32; 512 px, batch 16) in float32 and mixed precision, on Keras' TensorFlow and JAX backends
(``benchmarks.backends``); TensorFlow's pipeline-fed against memory-fed training at 224 and 512 px
(``benchmarks.gpu``); and, from the measured mixed-precision steps, the hours the ``full`` preset (and ``full`` with
the external images) would take there. It prints the table and writes it into benchmarks/README.md between
``<!-- accel-check -->`` markers. On a machine without one it says so in seconds and measures nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import backends, budget, common
from hpa_utils.stages import parameters
from hpa_utils.system.environment import REPO_ROOT

README = REPO_ROOT / "benchmarks" / "README.md"
SHAPES = ((224, 32), (512, 16))  # 01-02's side and batch, 03-04's
STEPS = 10


def accelerator() -> str:
    """ "GPU: <nvidia-smi's names>", "TPU: <what is attached>", or "" (none), without importing a framework."""
    if shutil.which("nvidia-smi"):
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
        if found:
            return "GPU: " + "; ".join(found.splitlines())
    accel = sorted(Path("/dev").glob("accel*")) + sorted(Path("/dev").glob("vfio/[0-9]*"))
    if accel or os.environ.get("TPU_NAME"):
        return f"TPU: {', '.join(map(str, accel)) or os.environ['TPU_NAME']}"
    return ""


def measure() -> list[dict]:
    """Step seconds for every shape, precision and backend."""
    rows = []
    for size, batch in SHAPES:
        for precision in ("off", "on"):
            for backend in backends.BACKENDS:
                step = backends.step_seconds(backend, "resnet50", size, batch=batch, steps=STEPS, precision=precision)
                rows.append({"size": size, "batch": batch, "backend": backend, **step})
    return rows


def projected_hours(rows: list[dict], external: int) -> float:
    """Hours of the ``full`` preset's training stages from the measured mixed-precision steps (the faster backend):
    its epochs over the training images (and ``external`` ones), plus a fifth held out and predicted at about three
    times the training rate."""
    preset = parameters.load_preset("full")
    rate = {}
    for row in rows:
        if row["precision_policy"] != "float32":
            rate[row["size"]] = max(rate.get(row["size"], 0), row["batch"] / row["seconds"])
    total = 0.0
    for stage in ("01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"):
        settings = preset["parameters"] | (preset["stages"].get(stage) or {})
        epochs = settings.get("EPOCHS", 0) + settings.get("WARMUP_EPOCHS", 0) + settings.get("FINETUNE_EPOCHS", 0)
        folds = settings.get("N_FOLDS", 1) if stage == "04_kfold" else 1
        side = min(rate, key=lambda size: abs(size - settings.get("IMAGE_SIZE", 224)))
        images = (budget.TRAIN_IMAGES + external) * epochs * folds
        total += images / rate[side] / 3600 * (1 + 0.2 / 3)
    return total


def table(found: str, rows: list[dict]) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{found}; {when}; `make accel-check`",
        "",
        "| ResNet50 RGBY | backend | precision | ms per step | images/s |",
        "|---|---|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['size']} px, batch {row['batch']} | {row['backend']} | {row['precision_policy']} | "
            f"{1000 * row['seconds']:.0f} | {row['batch'] / row['seconds']:.0f} |"
        )
    lines += [
        "",
        f"Projected from these steps: `full` {projected_hours(rows, 0):.1f} h of training, `full` with the "
        f"{budget.EXTERNAL_IMAGES:,} external images {projected_hours(rows, budget.EXTERNAL_IMAGES):.1f} h.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    found = accelerator()
    if not found:
        print("accel-check: no accelerator (no GPU, no TPU) on this machine: nothing to measure")
        return 0
    print(f"accel-check on {found}", flush=True)
    text = table(found, measure())
    pipeline = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--steps", str(STEPS), "--repeats", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text += (
        "\n\nPipeline-fed against memory-fed (`python -m benchmarks.gpu`):\n\n```\n" + pipeline.stdout.strip() + "\n```"
    )
    print(text)
    README.write_text(common.replace_block(README.read_text(), "accel-check", f"\n{text}\n", README))
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

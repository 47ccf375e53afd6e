"""Why a stage stopped, in one line: a cell that failed, a full disk (which folder, its free space, what the stage
writes there), a kernel that died (its last cell, its peak memory), a device out of memory; the full traceback goes to
the stage's log, and an executed notebook a full disk cut short loses its name."""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path

import nbclient.exceptions
import nbformat
import papermill

from hpa_utils import dataset, stages
from hpa_utils.dataset import cache
from hpa_utils.pipeline import stage_space
from hpa_utils.stages.stage_config import StageConfig
from hpa_utils.system import disk, environment, memory


def log_traceback(log_path: Path, text: str) -> Path:
    """Append ``text`` (a traceback) to the stage's log; where that disk is full, to a temporary file. Where it
    went."""
    for target in (log_path, Path(tempfile.gettempdir()) / f"hpa-{log_path.parent.name}-{log_path.name}"):
        try:
            with open(target, "a") as log:
                log.write(text)
            return target
        except OSError:
            continue
    return log_path


def last_cell(output: Path) -> str:
    """The last cell the executed notebook saw start, as "cell N (`its first line`)", or "" if it cannot tell."""
    try:
        cells = [cell for cell in nbformat.read(output, as_version=4).cells if cell.cell_type == "code"]
    except Exception:  # missing, or cut short by a full disk: nothing to read
        return ""
    started = [
        (number, cell)
        for number, cell in enumerate(cells, 1)
        if cell.metadata.get("papermill", {}).get("status") in ("running", "completed", "failed")
    ]
    if not started:
        return ""
    number, cell = started[-1]
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {number} (`{first[:60]}`)"


def keep_only_if_complete(output: Path) -> None:
    """Remove an executed notebook that a full disk cut short (and its HTML): no half-written file keeps its name."""
    if output.is_file():
        try:
            nbformat.read(output, as_version=4)
        except Exception:  # unreadable: written only in part
            output.unlink()
            output.with_suffix(".html").unlink(missing_ok=True)


def stopped(label: str, error: BaseException, output: Path, log_path: Path, peak: int | None, needs=None):
    """One StageStopped line for a stage that stopped: why, where it got to, and what to look at. ``needs``: about
    how many bytes the stage writes into its run folder (``stage_space.stage_bytes``)."""
    log = log_traceback(log_path, f"\n{label}: {type(error).__name__}\n" + "".join(traceback.format_exception(error)))
    keep_only_if_complete(output)
    if disk.is_full_disk(getattr(error, "evalue", error)):
        named = disk.path_in(getattr(error, "evalue", error))  # else the fullest of the folders a stage writes to
        folders = [output.parent, environment.REPO_ROOT / "data", cache.default_cache_dir()]
        folder = named.parent if named else min(folders, key=disk.free_bytes)
        return stages.StageStopped(disk.full_disk_line(label, folder, needs if folder == output.parent else None))
    if isinstance(error, nbclient.exceptions.DeadKernelError):
        total = memory.total_bytes()
        used = f"; its peak memory was at least {disk.describe(peak)}" if peak else ""
        used += f" of the machine's {disk.describe(total)}" if peak and total else ""
        return stages.StageStopped(
            f"{label} stopped: the notebook's kernel died during {last_cell(output) or 'its run'}{used}. Likely "
            "cause: memory (the operating system ends a process that asks for more than there is): a smaller "
            f"BATCH_SIZE or IMAGE_SIZE, or CACHE=stream, needs less (full log: {log})"
        )
    if isinstance(error, papermill.PapermillExecutionError):
        where = f"{label} failed in cell {error.exec_count} with {error.ename}: {error.evalue}"
        if error.ename == "AcceleratorMemoryError":
            where = f"{label} stopped: {error.evalue}"
        return stages.StageStopped(f"{where} (the executed copy shows it: {output}; full log: {log})")
    return stages.StageStopped(f"{label} failed with {type(error).__name__}: {error} (full log: {log})")


def needs(stage: str, injected: dict) -> int | None:
    """About how many bytes ``stage`` writes into the run folder, from its parameters (None for a notebook that is
    not one of the stages)."""
    if stage not in stages.STAGES:
        return None
    config = StageConfig.from_values(stage, injected)
    counts = config.synthetic_train, config.synthetic_test
    if config.data_dir:
        counts = dataset.image_counts(config.data_dir)
    return stage_space.stage_bytes(config, train_images=counts[0], test_images=counts[1])

"""The pipeline runner: presets -> papermill parameters -> executed notebooks in a run folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hpa_utils import comparison, disk, environment, files, memory, parameters, stage_files, stages

RUN_FILE = "run.json"


class RunError(RuntimeError):
    """A stage failed or the run could not start; the message says where to look."""


def stage_parameters(preset: dict, overrides: dict, stage: str, run_dir: Path, data_dir: str | None) -> dict:
    """What papermill injects into ``stage``: only the names the notebook declares, type-checked."""
    declared = parameters.declared(stage)
    values = parameters.stage_values(preset, stage, declared, overrides)
    if "OUTPUT_DIR" in declared:
        values["OUTPUT_DIR"] = str(run_dir)
    if data_dir and "DATA_DIR" in declared:
        values["DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    return values


def select_stages(notebooks: list[str], only: list[str] | None) -> list[str]:
    """The stages to run, in order; ``only`` accepts full names or their number prefix ("02")."""
    if not only:
        return list(notebooks)
    chosen = []
    for wanted in only:
        matches = [stage for stage in stages.STAGES if stage == wanted or stage.split("_")[0] == wanted]
        if not matches:
            raise ValueError(f"--only {wanted}: no such stage; stages are {', '.join(stages.STAGES)}")
        chosen += matches
    return [stage for stage in stages.STAGES if stage in chosen]


def check_data_dir(data_dir) -> None:
    """Refuse a --data-dir that is missing or whose label files or image files are broken, before a run starts.

    Runs ``dataset.validate`` without decoding images (that takes minutes on the real data; the
    notebooks report undecodable files by name). Raises ValueError listing every problem.
    """
    from hpa_utils import dataset

    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data-dir {data_dir}: folder not found")
    problems = dataset.validate(path, check_images=False, progress=False)
    if problems:
        raise ValueError(
            f"--data-dir {data_dir} has {len(problems)} problem{'s' if len(problems) != 1 else ''} "
            f"(see `python -m hpa_utils validate {data_dir}`):\n" + str(dataset.DatasetError(problems))
        )


def new_run_dir(out: str | None, preset_name: str) -> Path:
    """Create the run folder; refuse one that already holds files (use --resume for that)."""
    if out:
        run_dir = Path(out).expanduser().resolve()
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = environment.REPO_ROOT / "runs" / f"{stamp}-{preset_name}"
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"--out {run_dir} is a file, not a folder; nothing was touched. Choose another --out.")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(
            f"--out {run_dir} already exists and is not empty; nothing was touched. "
            f"Continue it with --resume {run_dir}, or choose another --out."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"--out {run_dir}: cannot write there ({error.strerror})") from None
    return run_dir


@contextlib.contextmanager
def kernel_stderr_to(log_path: Path):
    """Send file descriptor 2 (which the notebook kernel inherits: TensorFlow's C++ start-up lines, kernel
    warnings) to ``log_path`` meanwhile; yield a stream to the console for the progress bar."""
    sys.stderr.flush()
    console_fd = os.dup(2)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
    console = os.fdopen(os.dup(console_fd), "w", buffering=1)
    try:
        yield console
    finally:
        console.close()
        sys.stderr.flush()
        os.dup2(console_fd, 2)
        os.close(console_fd)


class StageStopped(RunError):
    """A stage ended without finishing: its notebook failed in a cell, the disk filled, or its kernel died."""


def _log_traceback(log_path: Path, text: str) -> Path:
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


def _last_cell(output: Path) -> str:
    """The last cell the executed notebook saw start, as "cell N (`its first line`)", or "" if it cannot tell."""
    import nbformat

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


def _keep_only_if_complete(output: Path) -> None:
    """Remove an executed notebook that a full disk cut short (and its HTML): no half-written file keeps its name."""
    import nbformat

    if output.is_file():
        try:
            nbformat.read(output, as_version=4)
        except Exception:  # unreadable: written only in part
            output.unlink()
            output.with_suffix(".html").unlink(missing_ok=True)


def _failure(label: str, error: BaseException, output: Path, log_path: Path, peak: int | None, needs=None):
    """One StageStopped line for a stage that stopped: why, where it got to, and what to look at. ``needs``: about
    how many bytes the stage writes into its run folder (``disk.stage_bytes``)."""
    from nbclient.exceptions import DeadKernelError
    from papermill import PapermillExecutionError

    log = _log_traceback(log_path, f"\n{label}: {type(error).__name__}\n" + "".join(traceback.format_exception(error)))
    _keep_only_if_complete(output)
    if disk.is_full_disk(getattr(error, "evalue", error)):
        from hpa_utils import cache  # on this error only: it brings the image readers (start-up time)

        named = disk.path_in(getattr(error, "evalue", error))  # else the fullest of the folders a stage writes to
        folders = [output.parent, environment.REPO_ROOT / "data", cache.default_cache_dir()]
        folder = named.parent if named else min(folders, key=disk.free_bytes)
        return StageStopped(disk.full_disk_line(label, folder, needs if folder == output.parent else None))
    if isinstance(error, DeadKernelError):
        total = memory.total_bytes()
        used = f"; its peak memory was at least {disk.describe(peak)}" if peak else ""
        used += f" of the machine's {disk.describe(total)}" if peak and total else ""
        return StageStopped(
            f"{label} stopped: the notebook's kernel died during {_last_cell(output) or 'its run'}{used}. Likely "
            "cause: memory (the operating system ends a process that asks for more than there is): a smaller "
            f"BATCH_SIZE or IMAGE_SIZE, or CACHE=stream, needs less (full log: {log})"
        )
    if isinstance(error, PapermillExecutionError):
        where = f"{label} failed in cell {error.exec_count} with {error.ename}: {error.evalue}"
        if error.ename == "AcceleratorMemoryError":
            where = f"{label} stopped: {error.evalue}"
        return StageStopped(f"{where} (the executed copy shows it: {output}; full log: {log})")
    return StageStopped(f"{label} failed with {type(error).__name__}: {error} (full log: {log})")


def _needs(stage: str, injected: dict) -> int | None:
    """About how many bytes ``stage`` writes into the run folder, from its parameters (None for a notebook that is
    not one of the stages)."""
    if stage not in stages.STAGES:
        return None
    counts = injected.get("SYNTHETIC_TRAIN", 1000), injected.get("SYNTHETIC_TEST", 200)
    if injected.get("DATA_DIR"):
        from hpa_utils.dataset import label_files  # pandas: only where a DATA_DIR is given (start-up time)

        counts = label_files.image_counts(injected["DATA_DIR"])
    return disk.stage_bytes(stage, injected, train_images=counts[0], test_images=counts[1])


def execute_notebook(
    source: Path,
    output: Path,
    injected: dict,
    cwd: Path,
    kernel_environment: dict | None = None,
    label: str | None = None,
) -> float:
    """Execute ``source`` into ``output`` (+ .html) with papermill in ``cwd``; return the seconds it took.

    ``injected``: the parameters papermill injects. ``kernel_environment`` sets (or, with None, removes)
    variables for the notebook's kernel only. The kernel's own stderr goes to ``output`` with suffix .log (the
    console keeps one progress bar). Raises StageStopped, one line: the failing cell and the executed copy that
    shows it, the folder of a full disk, or the cell a dead kernel was in and the memory it had used; the full
    traceback goes to the log.
    """
    import papermill
    from nbclient.exceptions import DeadKernelError

    label = label or Path(source).stem
    started = time.time()
    log_path = output.with_suffix(".log")
    saved = os.environ.copy()  # papermill takes no environment: the kernel inherits os.environ
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    for name, value in (kernel_environment or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    watcher = memory.PeakWatcher(os.getpid())
    try:
        with kernel_stderr_to(log_path) as console, watcher:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=injected,
                cwd=str(cwd),
                progress_bar={"desc": label, "unit": "cell", "file": console, "leave": True},
                kernel_name="python3",
            )
    except (papermill.PapermillExecutionError, DeadKernelError) as error:
        _write_html_if_room(output)
        raise _failure(label, error, output, log_path, watcher.peak, _needs(label, injected)) from None
    except OSError as error:
        if not disk.is_full_disk(error):
            raise
        raise _failure(label, error, output, log_path, watcher.peak, _needs(label, injected)) from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    write_html(output)
    return time.time() - started


def execute_stage(stage: str, run_dir: Path, injected: dict) -> float:
    """Execute one notebook into RUN_DIR/<stage>.ipynb (+ .html); raise StageStopped saying why, and how to go on."""
    python_path = os.pathsep.join(filter(None, [str(environment.REPO_ROOT), os.environ.get("PYTHONPATH")]))
    try:
        return execute_notebook(
            parameters.NOTEBOOKS_DIR / f"{stage}.ipynb",
            run_dir / f"{stage}.ipynb",
            injected,
            cwd=parameters.NOTEBOOKS_DIR,
            kernel_environment={"PYTHONPATH": python_path},
            label=stage,
        )
    except StageStopped as stopped:
        raise StageStopped(f"{stopped}. Then continue with: python -m hpa_utils run --resume {run_dir}") from None


def _write_html_if_room(output: Path) -> None:
    try:
        write_html(output)
    except OSError as error:
        if not disk.is_full_disk(error):
            raise


def write_html(notebook_path: Path) -> Path | None:
    """An HTML copy of an executed notebook beside it, plots included."""
    import nbconvert
    import nbformat

    if not notebook_path.is_file():
        return None
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    target = notebook_path.with_suffix(".html")
    with files.atomic_write(target) as temporary:
        temporary.write_text(body, encoding="utf-8")
    return target


def summary(run_dir: Path, statuses: dict) -> str:
    """A one-screen table: each stage's status, seconds and headline score (with its 95 % interval)."""
    lines = [f"run {run_dir}", f"{'stage':<20} {'status':<9} {'seconds':>8}  score [95% interval]"]
    for stage, (status, seconds) in statuses.items():
        finished = stages.is_finished(run_dir / stage)
        score = comparison.headline(stage_files.read_metrics(run_dir / stage), stage) if finished else ""
        lines.append(f"{stage:<20} {status:<9} {seconds:>8.0f}  {score}")
    report = run_dir / "report.html"
    if report.is_file():
        lines.append(f"report: {report}  (table: python -m hpa_utils summary {run_dir} --markdown)")
    return "\n".join(lines)


def check_run(preset: dict, overrides: dict, only, data_dir) -> list[str]:
    """Every check before anything is created or runs (a typo must not cost a stage's minutes); the stages to run."""
    declared = {stage: parameters.declared(stage) for stage in preset["notebooks"]}
    parameters.check_names(preset, overrides, declared)
    chosen = select_stages(preset["notebooks"], only)
    for stage in chosen:
        parameters.stage_values(preset, stage, declared[stage], overrides)
    if data_dir:
        check_data_dir(data_dir)
    return chosen


def run(
    preset: str | None = None,
    data_dir: str | None = None,
    out: str | None = None,
    only=None,
    overrides: dict | None = None,
    resume: str | None = None,
    verbose: bool = True,
) -> Path:
    """Run (or resume) the pipeline and return the run folder. Raises RunError at the first failing stage.

    ``verbose``: the opening lines and the closing summary (without: each stage's progress bar and result line).

    A wrong preset, parameter name or type, stage, --data-dir or --out raises ValueError, FileExistsError or
    PermissionError before the run folder is created and before any notebook starts.
    """
    overrides = dict(overrides or {})
    if resume:
        run_dir = Path(resume).expanduser().resolve()
        if not (run_dir / RUN_FILE).is_file():
            raise FileNotFoundError(f"--resume {run_dir}: no {RUN_FILE} there; is it a run folder?")
        record = files.read_json(run_dir / RUN_FILE)
        preset_record = record["preset"]
        overrides = {**record.get("overrides", {}), **overrides}
        data_dir = data_dir or record.get("data_dir")
    else:
        preset_record = parameters.load_preset(preset or "demo")
    chosen = check_run(preset_record, overrides, only, data_dir)
    if not resume:
        run_dir = new_run_dir(out, preset_record["name"])
        record = {
            "preset": preset_record,
            "overrides": overrides,
            "data_dir": data_dir,
            "created": dt.datetime.now().isoformat(timespec="seconds"),
            "stages": {},
        }
        files.write_json(run_dir / RUN_FILE, record)
    if verbose:
        print(f"run {run_dir}: preset {preset_record['name']}, stages {', '.join(chosen)}", flush=True)
        print(f"  (parameters: {run_dir / RUN_FILE}; full logs: {run_dir}/<stage>.ipynb and .log)", flush=True)
    statuses = {}
    try:
        for stage in chosen:
            if resume and not only and stages.is_finished(run_dir / stage):
                statuses[stage] = ("kept", 0.0)
                print(f"{stage}: finished earlier, kept as it is", flush=True)
                continue
            statuses[stage] = ("failed", 0.0)
            injected = stage_parameters(preset_record, overrides, stage, run_dir, data_dir)
            try:
                statuses[stage] = ("done", run_stage(stage, run_dir, injected, record))
            except OSError as error:  # run.json, after the stage: the notebook's own writes are execute_stage's
                if not disk.is_full_disk(error):
                    raise
                raise StageStopped(
                    f"{disk.full_disk_line(stage, run_dir)}. Then continue with: python -m hpa_utils run --resume "
                    f"{run_dir}"
                ) from None
    finally:
        write_report(run_dir)
        if verbose:
            print(summary(run_dir, statuses), flush=True)
    return run_dir


def run_stage(stage: str, run_dir: Path, injected: dict, record: dict) -> float:
    """Execute one stage, note it in run.json (seconds, time, parameters), print its result line; its seconds."""
    seconds = execute_stage(stage, run_dir, injected)
    record["stages"][stage] = {
        "seconds": round(seconds, 1),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "parameters": injected,
    }
    files.write_json(run_dir / RUN_FILE, record)
    finished = stages.is_finished(run_dir / stage)  # not when a run trains only some of 04's folds
    scores = (
        comparison.headline(stage_files.read_metrics(run_dir / stage), stage)
        if finished
        else f"no {stages.METRICS_FILE} yet"
    )
    print(f"{stage}: done in {seconds:.0f} s. {scores}", flush=True)
    return seconds


def write_report(run_dir: Path) -> None:
    """The run's report.html, when the report module can build one; on a full disk, one line saying it is not."""
    from hpa_utils import report

    try:
        report.write_report(run_dir)
    except OSError as error:
        if not disk.is_full_disk(error):
            raise
        print(f"report.html not written: the disk holding {run_dir} is full", file=sys.stderr)


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils run` (the command line turns a RunError into exit status 1)."""
    run(
        preset=arguments.preset,
        data_dir=arguments.data_dir,
        out=arguments.out,
        only=arguments.only,
        overrides=parameters.parse_overrides(arguments.parameter),
        resume=arguments.resume,
    )
    return 0

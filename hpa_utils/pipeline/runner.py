"""The pipeline runner: presets -> papermill parameters -> executed notebooks in a run folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
from pathlib import Path

import nbclient.exceptions
import nbconvert
import nbformat
import papermill

from hpa_utils import dataset, errors, stages
from hpa_utils.pipeline import stage_failures
from hpa_utils.results import comparison, report
from hpa_utils.stages import parameters, stage_files
from hpa_utils.system import atomic_files, disk, environment, memory

RUN_FILE = "run.json"
# The kernel leaves what the process itself writes to file descriptors 1 and 2 (TensorFlow's and absl's C++ log
# lines: "failed call to cuInit", oneDNN's notes) on its own stderr, which goes to the stage's log; what Python
# prints, warns and draws (tqdm) stays in the cell's output.
KERNEL_OUTPUT_TO_LOG = "--IPKernelApp.capture_fd_output=False"


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
            raise errors.InputError(f"--only {wanted}: no such stage; stages are {', '.join(stages.STAGES)}")
        chosen += matches
    return [stage for stage in stages.STAGES if stage in chosen]


def check_data_dir(data_dir) -> None:
    """Refuse a --data-dir that is missing or whose label files or image files are broken, before a run starts.

    Runs ``dataset.validate`` without decoding images (that takes minutes on the real data; the
    notebooks report undecodable files by name). Raises ValueError listing every problem.
    """
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise errors.InputError(f"--data-dir {data_dir}: folder not found")
    problems = dataset.validate(path, check_images=False, progress=False)
    if problems:
        raise errors.InputError(
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
        raise errors.ExistsError(f"--out {run_dir} is a file, not a folder; nothing was touched. Choose another --out.")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise errors.ExistsError(
            f"--out {run_dir} already exists and is not empty; nothing was touched. "
            f"Continue it with --resume {run_dir}, or choose another --out."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise errors.NotWritableError(f"--out {run_dir}: cannot write there ({error.strerror})") from error
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
                extra_arguments=[KERNEL_OUTPUT_TO_LOG],
            )
    except (papermill.PapermillExecutionError, nbclient.exceptions.DeadKernelError) as error:
        _write_html_if_room(output)
        raise stage_failures.stopped(
            label, error, output, log_path, watcher.peak, stage_failures.needs(label, injected)
        ) from error
    except OSError as error:
        if not disk.is_full_disk(error):
            raise
        raise stage_failures.stopped(
            label, error, output, log_path, watcher.peak, stage_failures.needs(label, injected)
        ) from error
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
    except stages.StageStopped as stopped:
        raise _resumable(str(stopped), run_dir) from stopped


def _resumable(line: str, run_dir: Path) -> stages.StageStopped:
    """A stage's stop line with the command that goes on from it."""
    return stages.StageStopped(f"{line}. Then continue with: python -m hpa_utils run --resume {run_dir}")


def _write_html_if_room(output: Path) -> None:
    try:
        write_html(output)
    except OSError as error:
        if not disk.is_full_disk(error):
            raise


def write_html(notebook_path: Path) -> Path | None:
    """An HTML copy of an executed notebook beside it, plots included."""
    if not notebook_path.is_file():
        return None
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    target = notebook_path.with_suffix(".html")
    with atomic_files.atomic_write(target) as temporary:
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


def _open_run(preset, data_dir, out, only, overrides: dict, resume) -> tuple[Path, dict, list[str]]:
    """The run folder and its record (run.json: preset, overrides, data folder, stages), new or resumed, and the
    stages to run. Every check comes before anything is created (a typo must not cost a stage's minutes)."""
    if resume:
        run_dir = Path(resume).expanduser().resolve()
        if not (run_dir / RUN_FILE).is_file():
            raise errors.MissingError(f"--resume {run_dir}: no {RUN_FILE} there; is it a run folder?")
        record = atomic_files.read_json(run_dir / RUN_FILE)
        record["overrides"] = {**record.get("overrides", {}), **overrides}
        record["data_dir"] = data_dir or record.get("data_dir")
        return run_dir, record, check_run(record["preset"], record["overrides"], only, record["data_dir"])
    preset_record = parameters.load_preset(preset or "demo")
    chosen = check_run(preset_record, overrides, only, data_dir)
    run_dir = new_run_dir(out, preset_record["name"])
    record = {
        "preset": preset_record,
        "overrides": overrides,
        "data_dir": data_dir,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "stages": {},
    }
    atomic_files.write_json(run_dir / RUN_FILE, record)
    return run_dir, record, chosen


def run(
    preset: str | None = None,
    data_dir: str | None = None,
    out: str | None = None,
    only=None,
    overrides: dict | None = None,
    resume: str | None = None,
    verbose: bool = True,
) -> Path:
    """Run (or resume) the pipeline and return the run folder. Raises StageStopped at the first stage that stops.

    ``verbose``: the opening lines and the closing summary (without: each stage's progress bar and result line).
    A resumed run keeps every finished stage (unless ``only`` names it). A wrong preset, parameter name or type,
    stage, --data-dir or --out raises ValueError, FileExistsError or PermissionError before the run folder is
    created and before any notebook starts.
    """
    run_dir, record, chosen = _open_run(preset, data_dir, out, only, dict(overrides or {}), resume)
    if verbose:
        print(f"run {run_dir}: preset {record['preset']['name']}, stages {', '.join(chosen)}", flush=True)
        print(f"  (parameters: {run_dir / RUN_FILE}; full logs: {run_dir}/<stage>.ipynb and .log)", flush=True)
    statuses = {}
    try:
        for stage in chosen:
            if resume and not only and stages.is_finished(run_dir / stage):
                statuses[stage] = ("kept", 0.0)
                print(f"{stage}: finished earlier, kept as it is", flush=True)
                continue
            statuses[stage] = ("failed", 0.0)
            statuses[stage] = ("done", run_stage(stage, run_dir, record))
    finally:
        write_report(run_dir)
        if verbose:
            print(summary(run_dir, statuses), flush=True)
    return run_dir


def run_stage(stage: str, run_dir: Path, record: dict) -> float:
    """Execute one stage, note it in run.json (seconds, time, parameters), print its result line; its seconds."""
    injected = stage_parameters(record["preset"], record["overrides"], stage, run_dir, record["data_dir"])
    seconds = execute_stage(stage, run_dir, injected)
    record["stages"][stage] = {
        "seconds": round(seconds, 1),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "parameters": injected,
    }
    try:
        atomic_files.write_json(run_dir / RUN_FILE, record)
    except OSError as error:  # run.json, after the stage (the notebook's own writes are execute_stage's)
        if not disk.is_full_disk(error):
            raise
        raise _resumable(disk.full_disk_line(stage, run_dir), run_dir) from error
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

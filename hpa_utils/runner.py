"""The pipeline runner: presets -> papermill parameters -> executed notebooks in a run folder."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import yaml

from hpa_utils import environment, files, stages

NOTEBOOKS_DIR = environment.REPO_ROOT / "notebooks"
PRESETS_DIR = environment.REPO_ROOT / "presets"
RUN_FILE = "run.json"
PYTHON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}


class RunError(RuntimeError):
    """A stage failed or the run could not start; the message says where to look."""


def load_preset(name_or_path: str) -> dict:
    """A preset as {"name", "description", "parameters", "stages", "notebooks"}; clear errors for bad files."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise ValueError(f"preset {name_or_path!r} not found ({path}); available presets: {available}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(content, dict) or not isinstance(content.get("parameters", {}), dict):
        raise ValueError(f"{path}: expected a mapping with a 'parameters' mapping")
    unknown = set(content) - {"description", "parameters", "stages", "notebooks"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    notebooks = content.get("notebooks", list(stages.STAGES))
    for stage in notebooks:
        if stage not in stages.STAGES:
            raise ValueError(f"{path}: unknown notebook {stage!r}; notebooks are {', '.join(stages.STAGES)}")
    for stage in content.get("stages") or {}:
        if stage not in stages.STAGES:
            raise ValueError(f"{path}: 'stages' names unknown notebook {stage!r}")
    return {"name": path.stem, "description": content.get("description", ""),
            "parameters": content.get("parameters") or {}, "stages": content.get("stages") or {},
            "notebooks": list(notebooks)}


def declared_parameters(stage: str) -> dict:
    """The parameters a notebook declares: {name: (type name, default)} from papermill's inspection."""
    import papermill

    inspected = papermill.inspect_notebook(str(NOTEBOOKS_DIR / f"{stage}.ipynb"))
    return {name: (info["inferred_type_name"], info["default"]) for name, info in inspected.items()}


def check_type(stage: str, name: str, type_name: str, value, source: str) -> None:
    """Raise ValueError when ``value`` does not fit the notebook's annotation of ``name``."""
    base = type_name.split("[")[0].strip().lower()
    allowed = PYTHON_TYPES.get(base)
    if allowed is None:
        return
    if isinstance(value, bool) and base != "bool" or not isinstance(value, allowed):
        raise ValueError(f"parameter {name} of {stage} expects {type_name}, got {value!r} "
                         f"({type(value).__name__}) from {source}")


def checked_values(preset: dict, overrides: dict, stage: str) -> dict:
    """The preset and -p values that ``stage`` declares, type-checked (ValueError naming parameter, stage, source)."""
    declared = declared_parameters(stage)
    values = {}
    for source, mapping in ((f"preset {preset['name']}", preset["parameters"]),
                            (f"preset {preset['name']} stages.{stage}", preset["stages"].get(stage) or {}),
                            ("the command line", overrides)):
        for name, value in mapping.items():
            if name in declared:
                check_type(stage, name, declared[name][0], value, source)
                values[name] = value
    return values


def stage_parameters(preset: dict, overrides: dict, stage: str, run_dir: Path, data_dir: str | None) -> dict:
    """What papermill injects into ``stage``: only the names the notebook declares, type-checked."""
    declared = declared_parameters(stage)
    values = checked_values(preset, overrides, stage)
    if "OUTPUT_DIR" in declared:
        values["OUTPUT_DIR"] = str(run_dir)
    if data_dir and "DATA_DIR" in declared:
        values["DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    return values


def check_names(preset: dict, overrides: dict, notebooks: list[str]) -> None:
    """Refuse a preset or -p name that no notebook of the run declares (a typo would silently do nothing)."""
    declared = set().union(*(declared_parameters(stage) for stage in notebooks))
    for source, names in ((f"preset {preset['name']}", preset["parameters"]), ("-p", overrides)):
        unknown = sorted(set(names) - declared)
        if unknown:
            raise ValueError(f"{source} sets {', '.join(unknown)}, which no notebook declares "
                             f"(declared: {', '.join(sorted(declared))})")


def parse_overrides(items: list[str]) -> dict:
    """``["EPOCHS=2", "FOLDS=[0, 1]"]`` -> {"EPOCHS": 2, "FOLDS": [0, 1]}; values are read as YAML."""
    result = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name.isidentifier():
            raise ValueError(f"-p {item!r}: expected NAME=VALUE")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as error:
            raise ValueError(f"-p {item!r}: the value is not valid YAML ({str(error).splitlines()[0]}); "
                             f"quote text, write lists as [0, 1]") from None
        result[name] = _as_number(value)
    return result


def _as_number(value):
    """YAML 1.1 reads 1e-4 as text; a value that Python reads as a float is a float."""
    if isinstance(value, str):
        try:
            return float(value) if any(mark in value.lower() for mark in ".e") else value
        except ValueError:
            return value
    return value


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
        raise ValueError(f"--data-dir {data_dir} has {len(problems)} problem{'s' if len(problems) != 1 else ''} "
                         f"(see `python -m hpa_utils validate {data_dir}`):\n" + str(dataset.DatasetError(problems)))


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
        raise FileExistsError(f"--out {run_dir} already exists and is not empty; nothing was touched. "
                              f"Continue it with --resume {run_dir}, or choose another --out.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"--out {run_dir}: cannot write there ({error.strerror})") from None
    return run_dir


def execute_notebook(source: Path, output: Path, parameters: dict, cwd: Path, environment: dict | None = None,
                     label: str | None = None) -> float:
    """Execute ``source`` into ``output`` (+ .html) with papermill in ``cwd``; return the seconds it took.

    ``environment`` sets (or, with None, removes) variables for the notebook's kernel only. Raises
    RunError naming the failing cell and the executed copy that shows the error.
    """
    import papermill

    label = label or Path(source).stem
    started = time.time()
    saved = os.environ.copy()  # papermill takes no environment: the kernel inherits os.environ
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    for name, value in (environment or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters, cwd=str(cwd),
                                   progress_bar={"desc": label, "unit": "cell"}, kernel_name="python3")
    except papermill.PapermillExecutionError as error:
        write_html(output)
        raise RunError(f"{label} failed in cell {error.exec_count} with {error.ename}: {error.evalue}\n"
                       f"  the executed copy shows the error: {output} (and {output.with_suffix('.html')})") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    write_html(output)
    return time.time() - started


def execute_stage(stage: str, run_dir: Path, parameters: dict) -> float:
    """Execute one notebook into RUN_DIR/<stage>.ipynb (+ .html); raise RunError naming the failing cell."""
    python_path = os.pathsep.join(filter(None, [str(environment.REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return execute_notebook(NOTEBOOKS_DIR / f"{stage}.ipynb", run_dir / f"{stage}.ipynb", parameters,
                            cwd=NOTEBOOKS_DIR, environment={"PYTHONPATH": python_path}, label=stage)


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
    """A one-screen table: each stage's status, seconds and validation score."""
    lines = [f"run {run_dir}", f"{'stage':<20} {'status':<9} {'seconds':>8}  score"]
    for stage, (status, seconds) in statuses.items():
        score = ""
        metrics_path = run_dir / stage / "metrics.json"
        if metrics_path.is_file():
            metrics = files.read_json(metrics_path)
            parts = [f"{key}={metrics[key]:.3f}" for key in ("val_f1_at_0.5", "oof_f1_at_per_class", "test_f1")
                     if isinstance(metrics.get(key), (int, float))]
            score = "  ".join(parts)
        lines.append(f"{stage:<20} {status:<9} {seconds:>8.0f}  {score}")
    report = run_dir / "report.html"
    if report.is_file():
        lines.append(f"report: {report}")
    return "\n".join(lines)


def run(preset: str | None = None, data_dir: str | None = None, out: str | None = None, only=None,
        overrides: dict | None = None, resume: str | None = None) -> Path:
    """Run (or resume) the pipeline and return the run folder. Raises RunError at the first failing stage.

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
        preset_record = load_preset(preset or "demo")
    # Every check before anything is created or runs: a typo must not cost a stage's minutes.
    check_names(preset_record, overrides, preset_record["notebooks"])
    chosen = select_stages(preset_record["notebooks"], only)
    for stage in chosen:
        checked_values(preset_record, overrides, stage)
    if data_dir:
        check_data_dir(data_dir)
    if not resume:
        run_dir = new_run_dir(out, preset_record["name"])
        record = {"preset": preset_record, "overrides": overrides, "data_dir": data_dir,
                  "created": dt.datetime.now().isoformat(timespec="seconds"), "stages": {}}
        files.write_json(run_dir / RUN_FILE, record)
    print(f"run {run_dir}: preset {preset_record['name']}, stages {', '.join(chosen)}", flush=True)
    statuses = {}
    try:
        for stage in chosen:
            if resume and not only and (run_dir / stage / "metrics.json").is_file():
                statuses[stage] = ("kept", 0.0)
                print(f"{stage}: finished earlier, kept as it is", flush=True)
                continue
            parameters = stage_parameters(preset_record, overrides, stage, run_dir, data_dir)
            print(f"{stage}: running with {parameters}", flush=True)
            statuses[stage] = ("failed", 0.0)
            seconds = execute_stage(stage, run_dir, parameters)
            statuses[stage] = ("done", seconds)
            record["stages"][stage] = {"seconds": round(seconds, 1),
                                       "finished": dt.datetime.now().isoformat(timespec="seconds")}
            files.write_json(run_dir / RUN_FILE, record)
    finally:
        write_report(run_dir)
        print(summary(run_dir, statuses), flush=True)
    return run_dir


def write_report(run_dir: Path) -> None:
    """The run's report.html, when the report module can build one."""
    from hpa_utils import report

    report.write_report(run_dir)


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils run`."""
    try:
        run(preset=arguments.preset, data_dir=arguments.data_dir, out=arguments.out, only=arguments.only,
            overrides=parse_overrides(arguments.parameter), resume=arguments.resume)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

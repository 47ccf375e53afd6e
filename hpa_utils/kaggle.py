"""The Kaggle export: each notebook as a Kaggle kernel folder, the hpa_utils package as the dataset they import."""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from hpa_utils import dataset, files, runner, stages

DATASET_SLUG = "hpa-utils"  # the notebooks look for the package in /kaggle/input/hpa-utils
DATASET_LICENSE = "CC-BY-SA-3.0"
MARKER = ".hpa-kaggle-export"  # marks a folder this module wrote, so a re-export may replace it
METADATA_FILE = "kernel-metadata.json"
DATASET_METADATA_FILE = "dataset-metadata.json"
KAGGLE_RESOLVED = ("DATA_DIR", "OUTPUT_DIR")  # left "": the notebooks resolve them to /kaggle/input and /kaggle/working
NO_GPU_STAGES = ("00_eda",)  # reads CSVs and a few images; a GPU would only use up the weekly quota
DATASET_FILES = ("requirements.txt", "requirements-nodeps.txt")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_DATASET_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]*")
_COPY_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def check_user(user: str) -> str:
    """Return ``user`` when it can be a Kaggle user name; ValueError otherwise (empty, spaces, slashes, ...)."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise ValueError(f"Kaggle user name {user!r} is not valid: use the name from your profile address "
                         f"kaggle.com/<name> (letters, digits, '-' or '_'; no spaces or slashes)")
    return user


def _check_dataset_reference(reference: str) -> str:
    if not isinstance(reference, str) or not _DATASET_REFERENCE.fullmatch(reference):
        raise ValueError(f"weights dataset {reference!r}: expected owner/slug as in kaggle.com/datasets/owner/slug")
    return reference


def _check_stage(stage: str) -> str:
    if stage not in stages.STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(stages.STAGES)}")
    return stage


def kernel_slug(stage: str) -> str:
    """The kernel's slug on Kaggle: "01_baseline" -> "hpa-01-baseline"."""
    return "hpa-" + _check_stage(stage).replace("_", "-")


def kernel_title(stage: str) -> str:
    """A title that Kaggle resolves to kernel_slug(stage) (lowercased, spaces -> dashes): "HPA 01 baseline"."""
    return "HPA " + _check_stage(stage).replace("_", " ")


def upstream_stages(stage: str) -> list[str]:
    """The stages whose kernel output ``stage`` reads: its direct upstream and every earlier training stage.

    The direct upstream gives the chain (03_upscale loads 02's weights); the earlier training stages
    let stages.comparison_table show every score so far. 00_eda is only the direct upstream of 01.
    """
    index = stages.STAGES.index(_check_stage(stage))
    wanted = set(stages.STAGES[1:index]) | ({stages.STAGES[index - 1]} if index else set())
    return [name for name in stages.STAGES if name in wanted]


def kernel_metadata(user: str, stage: str, public: bool = False, weights_dataset: str | None = None) -> dict:
    """The kernel-metadata.json of ``stage`` for ``user``.

    Internet is off: code competitions refuse submissions from kernels with internet on, and an offline
    kernel is reproducible. Pretrained weights therefore come from a dataset: ``weights_dataset``
    ("owner/slug", e.g. a dataset of Keras "notop" weight files) is attached to the training kernels.
    """
    check_user(user)
    sources = [f"{user}/{DATASET_SLUG}"]
    if weights_dataset is not None:
        _check_dataset_reference(weights_dataset)
        if stage not in NO_GPU_STAGES:
            sources.append(weights_dataset)
    return {
        "id": f"{user}/{kernel_slug(stage)}",
        "title": kernel_title(stage),
        "code_file": f"{kernel_slug(stage)}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": not public,
        "enable_gpu": stage not in NO_GPU_STAGES,
        "enable_internet": False,
        "dataset_sources": sources,
        "competition_sources": [dataset.KAGGLE_COMPETITION],
        "kernel_sources": [f"{user}/{kernel_slug(upstream)}" for upstream in upstream_stages(stage)],
    }


def python_literal(value, where: str = "value") -> str:
    """``value`` written as Python source that ast.literal_eval reads back (str, int, float, bool, None, list, dict)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} cannot be written as a literal")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # double quotes as in the notebooks; JSON escapes are Python's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(item, where) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(key, where)}: {python_literal(item, where)}"
                               for key, item in value.items()) + "}"
    raise ValueError(f"{where}: {value!r} ({type(value).__name__}) is not a literal a parameters cell can hold")


def _parameter_statements(source: str, where: str) -> list[ast.AnnAssign]:
    """The `NAME: type = literal` statements of a parameters cell; ValueError for anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise ValueError(f"{where}: the parameters cell is not valid Python "
                         f"({error.msg}, line {error.lineno})") from None
    for statement in tree.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value):
            raise ValueError(f"{where}: the parameters cell must hold `NAME: type = literal` lines only, "
                             f"found `{ast.unparse(statement)}`")
    return tree.body


def declared_parameters(source: str, where: str = "parameters cell") -> dict:
    """{name: (annotation, default)} of a parameters cell's source (what runner.declared_parameters reads)."""
    declared = {}
    for statement in _parameter_statements(source, where):
        try:
            default = ast.literal_eval(statement.value)
        except ValueError:
            raise ValueError(f"{where}: {statement.target.id} is not a literal: "
                             f"`{ast.unparse(statement.value)}`") from None
        declared[statement.target.id] = (ast.unparse(statement.annotation), default)
    return declared


def set_parameter_defaults(source: str, values: dict, where: str = "parameters cell") -> str:
    """The parameters cell ``source`` with the defaults of ``values`` rewritten in place.

    Only the literal after `=` changes; names, annotations, comments and line order stay as they were.
    """
    data = source.encode()
    line_starts = [0]
    for line in data.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    edits = []
    for statement in _parameter_statements(source, where):
        name = statement.target.id
        if name in values:
            node = statement.value
            start = line_starts[node.lineno - 1] + node.col_offset  # ast offsets count UTF-8 bytes
            end = line_starts[node.end_lineno - 1] + node.end_col_offset
            edits.append((start, end, python_literal(values[name], f"{where}: {name}").encode()))
    for start, end, text in sorted(edits, reverse=True):
        data = data[:start] + text + data[end:]
    return data.decode()


def kaggle_parameters(preset: dict, stage: str, declared: dict) -> dict:
    """The defaults ``stage`` gets on Kaggle: the preset's values for names it declares, DATA_DIR/OUTPUT_DIR ""."""
    values = {}
    for source, mapping in ((f"preset {preset['name']}", preset["parameters"]),
                            (f"preset {preset['name']} stages.{stage}", preset["stages"].get(stage) or {})):
        for name, value in mapping.items():
            if name in declared and name not in KAGGLE_RESOLVED:
                runner.check_type(stage, name, declared[name][0], value, source)
                values[name] = value
    values.update({name: "" for name in KAGGLE_RESOLVED if name in declared})
    return values


def _parameters_cell(notebook, path: Path):
    found = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(found) != 1:
        raise ValueError(f"{path}: expected exactly one cell tagged 'parameters', found {len(found)}")
    return found[0]


def _read_notebooks(notebooks_dir: Path, notebooks: list[str]) -> dict:
    import nbformat

    loaded = {}
    for stage in notebooks:
        path = notebooks_dir / f"{stage}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: notebook not found; the export needs every notebook of the preset")
        loaded[stage] = (path, nbformat.read(path, as_version=4))
    return loaded


def _check_preset_names(preset: dict, declared: dict) -> None:
    """Refuse preset names no exported notebook declares: on Kaggle a typo would silently do nothing."""
    everywhere = set().union(*declared.values())
    unknown = sorted(set(preset["parameters"]) - everywhere)
    if unknown:
        raise ValueError(f"preset {preset['name']} sets {', '.join(unknown)}, which no notebook declares "
                         f"(declared: {', '.join(sorted(everywhere))})")
    for stage, mapping in preset["stages"].items():
        unknown = sorted(set(mapping or {}) - declared.get(stage, set()))
        if unknown:
            raise ValueError(f"preset {preset['name']} stages.{stage} sets {', '.join(unknown)}, "
                             f"which {stage} does not declare")


def _write_kernel(folder: Path, path: Path, notebook, values: dict, metadata: dict) -> None:
    import nbformat

    cell = _parameters_cell(notebook, path)
    cell.source = set_parameter_defaults(cell.source, values, str(path))
    for each in notebook.cells:
        if each.cell_type == "code":
            each.outputs = []
            each.execution_count = None
    nbformat.validate(notebook)
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / metadata["code_file"])
    files.write_json(folder / METADATA_FILE, metadata)


def _write_package_dataset(folder: Path, user: str) -> None:
    """The hpa_utils package, presets and requirements, with dataset-metadata.json, as Kaggle's dataset upload wants."""
    shutil.copytree(stages.REPO_ROOT / "hpa_utils", folder / "hpa_utils", ignore=_COPY_IGNORED)
    presets = stages.REPO_ROOT / "presets"
    if presets.is_dir():
        shutil.copytree(presets, folder / "presets", ignore=_COPY_IGNORED)
    for name in DATASET_FILES:
        if (stages.REPO_ROOT / name).is_file():
            shutil.copy2(stages.REPO_ROOT / name, folder / name)
    description = (
        "The `hpa_utils` package of the Human Protein Atlas notebook bundle (HPA 00 eda ... HPA 04 kfold). "
        "Each kernel adds this dataset and puts /kaggle/input/hpa-utils on sys.path, so "
        "`from hpa_utils import dataset, models` works offline. Holds hpa_utils/ (with its data/*.csv), "
        "presets/ and the requirements files."
    )
    (folder / "README.md").write_text(f"# hpa-utils\n\n{description}\n", encoding="utf-8")
    files.write_json(folder / DATASET_METADATA_FILE, {
        "title": "HPA utils package",
        "id": f"{user}/{DATASET_SLUG}",
        "subtitle": "The hpa_utils package the HPA notebook kernels import",
        "description": description,
        "licenses": [{"name": DATASET_LICENSE}],
    })


def _push_guide(user: str, notebooks: list[str]) -> str:
    lines = [
        "# Upload to Kaggle (in this order)", "",
        f"kaggle datasets create -p {DATASET_SLUG} --dir-mode zip   # later: kaggle datasets version -p {DATASET_SLUG} "
        "--dir-mode zip -m 'update'", "",
    ]
    for stage in notebooks:
        lines += [f"kaggle kernels push -p {stage}",
                  f"kaggle kernels status {user}/{kernel_slug(stage)}   # wait for COMPLETE before the next push", ""]
    return "\n".join(lines)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; nothing was touched. Choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} is not empty and is not an earlier Kaggle export (no {MARKER} in it); "
                              f"nothing was touched. Choose another --out, or empty that folder.")


def _replace_folder(staging: Path, out: Path) -> None:
    """Put ``staging`` where ``out`` is: an earlier export is renamed away first and removed after."""
    if not out.exists():
        staging.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(user: str, out="kaggle_export", public: bool = False, preset: str = "full",
           weights_dataset: str | None = None, notebooks_dir=None) -> Path:
    """Write the Kaggle upload folders for ``user`` into ``out`` and return ``out``.

    ``out/<stage>/`` holds each notebook (parameters set to the preset's values, DATA_DIR and
    OUTPUT_DIR left "") and its kernel-metadata.json; ``out/hpa-utils/`` is the package as a dataset.
    ``preset`` is a preset name or YAML file; ``weights_dataset`` ("owner/slug") is attached to the
    training kernels. ``notebooks_dir`` defaults to the repository's notebooks/.
    Raises ValueError for a bad user name or preset, FileExistsError for an ``out`` that holds
    anything but an earlier export (a re-export replaces an earlier one whole).
    """
    check_user(user)
    if weights_dataset is not None:
        _check_dataset_reference(weights_dataset)
    preset_record = runner.load_preset(preset)
    out = Path(out).expanduser().resolve()
    _check_out(out)
    notebooks = preset_record["notebooks"]
    loaded = _read_notebooks(Path(notebooks_dir) if notebooks_dir else runner.NOTEBOOKS_DIR, notebooks)
    declared = {stage: declared_parameters(_parameters_cell(notebook, path).source, str(path))
                for stage, (path, notebook) in loaded.items()}
    _check_preset_names(preset_record, {stage: set(names) for stage, names in declared.items()})

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        online_weights = []
        for stage, (path, notebook) in loaded.items():
            values = kaggle_parameters(preset_record, stage, declared[stage])
            if values.get("WEIGHTS", declared[stage].get("WEIGHTS", (None, None))[1]) == "imagenet":
                online_weights.append(stage)
            _write_kernel(staging / stage, path, notebook, values,
                          kernel_metadata(user, stage, public, weights_dataset))
        _write_package_dataset(staging / DATASET_SLUG, user)
        (staging / "UPLOAD.md").write_text(_push_guide(user, notebooks), encoding="utf-8")
        files.write_json(staging / MARKER, {"written_by": "python -m hpa_utils kaggle-export", "user": user,
                                            "preset": preset_record["name"], "notebooks": notebooks})
        _check_out(out)  # still safe to replace (nothing appeared there meanwhile)
        _replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if online_weights:
        warnings.warn(f"{', '.join(online_weights)}: WEIGHTS is 'imagenet', which Keras downloads, but the kernels "
                      f"run with internet off. Set WEIGHTS to the weights file in a Kaggle dataset "
                      f"(/kaggle/input/<dataset>/<file>_notop.h5) and attach that dataset (weights_dataset=).",
                      stacklevel=2)
    return out

"""Presets and notebook parameters: each notebook's parameters cell, preset values combined and checked, literals.

The runner (papermill's injected parameters) and the Kaggle export (defaults rewritten in the cell)
both take a stage's values from here, so a name, a type or a typo is judged the same way by both.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import nbformat
import papermill
import yaml

from hpa_utils import errors, stages
from hpa_utils.system import environment

NOTEBOOKS_DIR = environment.REPO_ROOT / "notebooks"
PRESETS_DIR = environment.REPO_ROOT / "presets"
PYTHON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}
BOOLEAN_TAG = "tag:yaml.org,2002:bool"


class YamlLoader(yaml.SafeLoader):
    """YAML with the booleans of YAML 1.2, true and false only: ``MIXED_PRECISION: on`` (a preset or ``-p``)
    stays the text "on", where PyYAML's YAML 1.1 would read on, off, yes and no as True and False."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != BOOLEAN_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(BOOLEAN_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_preset(name_or_path: str) -> dict:
    """A preset as {"name", "description", "parameters", "stages", "notebooks"}; clear errors for bad files."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise errors.InputError(f"preset {name_or_path!r} not found ({path}); available presets: {available}")
    try:
        content = yaml.load(path.read_text(), Loader=YamlLoader) or {}
    except yaml.YAMLError as error:
        raise errors.InputError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(content, dict) or not isinstance(content.get("parameters", {}), dict):
        raise errors.InputError(f"{path}: expected a mapping with a 'parameters' mapping")
    unknown = set(content) - {"description", "parameters", "stages", "notebooks"}
    if unknown:
        raise errors.InputError(f"{path}: unknown keys {sorted(unknown)}")
    notebooks = content.get("notebooks", list(stages.STAGES))
    for stage in notebooks:
        if stage not in stages.STAGES:
            raise errors.InputError(f"{path}: unknown notebook {stage!r}; notebooks are {', '.join(stages.STAGES)}")
    for stage in content.get("stages") or {}:
        if stage not in stages.STAGES:
            raise errors.InputError(f"{path}: 'stages' names unknown notebook {stage!r}")
    return {
        "name": path.stem,
        "description": content.get("description", ""),
        "parameters": content.get("parameters") or {},
        "stages": content.get("stages") or {},
        "notebooks": list(notebooks),
    }


def parameters_cell(notebook, path: Path):
    """The notebook's one cell tagged ``parameters``; ValueError when there is not exactly one."""
    found = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(found) != 1:
        raise errors.InputError(f"{path}: expected exactly one cell tagged 'parameters', found {len(found)}")
    return found[0]


def declared(stage: str, notebooks_dir=None) -> dict:
    """{name: (annotation, default)} of the parameters ``stage``'s notebook declares (in ``notebooks_dir``), as
    papermill reads its parameters cell (``inspect_notebook``: the names, annotations and defaults it injects over)."""
    path = Path(notebooks_dir or NOTEBOOKS_DIR) / f"{stages.check_stage(stage)}.ipynb"
    if not path.is_file():
        raise errors.MissingError(f"{path}: notebook not found")
    parameters_cell(nbformat.read(path, as_version=4), path)  # exactly one, or a clear error
    found = {}
    for name, spec in papermill.inspect_notebook(str(path)).items():
        try:
            found[name] = (spec["inferred_type_name"], ast.literal_eval(spec["default"]))
        except (ValueError, SyntaxError) as error:
            raise errors.InputError(f"{path}: {name} is not a literal: `{spec['default']}`") from error
    return found


def check_type(stage: str, name: str, type_name: str, value, source: str) -> None:
    """Raise ValueError when ``value`` does not fit the notebook's annotation of ``name``."""
    base = type_name.split("[")[0].strip().lower()
    allowed = PYTHON_TYPES.get(base)
    if allowed is None:
        return
    if isinstance(value, bool) and base != "bool" or not isinstance(value, allowed):
        raise errors.InputError(
            f"parameter {name} of {stage} expects {type_name}, got {value!r} ({type(value).__name__}) from {source}"
        )


def stage_values(preset: dict, stage: str, declared_names: dict, overrides: dict | None = None, skip=()) -> dict:
    """The preset's (and the command line's) values for the names ``stage`` declares, type-checked.

    ``declared_names`` is ``declared(stage)``; names in ``skip`` are left out. Raises ValueError
    naming the parameter, the stage and where the value came from.
    """
    values = {}
    for source, mapping in (
        (f"preset {preset['name']}", preset["parameters"]),
        (f"preset {preset['name']} stages.{stage}", preset["stages"].get(stage) or {}),
        ("the command line", overrides or {}),
    ):
        for name, value in mapping.items():
            if name in declared_names and name not in skip:
                check_type(stage, name, declared_names[name][0], value, source)
                values[name] = value
    return values


def check_names(preset: dict, overrides: dict, declared_by_stage: dict) -> None:
    """Refuse a preset, per-stage or -p name that no notebook of the run declares: a typo would do nothing."""
    everywhere = set().union(*declared_by_stage.values())
    for source, names in ((f"preset {preset['name']}", preset["parameters"]), ("-p", overrides)):
        unknown = sorted(set(names) - everywhere)
        if unknown:
            raise errors.InputError(
                f"{source} sets {', '.join(unknown)}, which no notebook declares "
                f"(declared: {', '.join(sorted(everywhere))})"
            )
    for stage, mapping in preset["stages"].items():
        if stage in declared_by_stage:
            unknown = sorted(set(mapping or {}) - set(declared_by_stage[stage]))
            if unknown:
                raise errors.InputError(
                    f"preset {preset['name']} stages.{stage} sets {', '.join(unknown)}, which {stage} does not declare"
                )


def python_literal(value, where: str = "value") -> str:
    """``value`` written as Python source that ast.literal_eval reads back (str, int, float, bool, None, list, dict)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise errors.InputError(f"{where}: {value!r} cannot be written as a literal")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # double quotes as in the notebooks; JSON escapes are Python's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(item, where) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{python_literal(key, where)}: {python_literal(item, where)}" for key, item in value.items())
            + "}"
        )
    raise errors.InputError(f"{where}: {value!r} ({type(value).__name__}) is not a literal a parameters cell can hold")


def _parameter_statements(source: str, where: str) -> list[ast.AnnAssign]:
    """The `NAME: type = literal` statements of a parameters cell; ValueError for anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise errors.InputError(
            f"{where}: the parameters cell is not valid Python ({error.msg}, line {error.lineno})"
        ) from error
    for statement in tree.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value):
            raise errors.InputError(
                f"{where}: the parameters cell must hold `NAME: type = literal` lines only, "
                f"found `{ast.unparse(statement)}`"
            )
    return tree.body


def declared_in_source(source: str, where: str = "parameters cell") -> dict:
    """{name: (annotation, default)} of a parameters cell's source; ValueError naming what is not a literal."""
    declared = {}
    for statement in _parameter_statements(source, where):
        try:
            default = ast.literal_eval(statement.value)
        except ValueError as error:
            raise errors.InputError(
                f"{where}: {statement.target.id} is not a literal: `{ast.unparse(statement.value)}`"
            ) from error
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


def parse_overrides(items: list[str]) -> dict:
    """``["EPOCHS=2", "FOLDS=[0, 1]"]`` -> {"EPOCHS": 2, "FOLDS": [0, 1]}; values are read as YAML."""
    result = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name.isidentifier():
            raise errors.InputError(f"-p {item!r}: expected NAME=VALUE")
        try:
            value = yaml.load(text, Loader=YamlLoader) if text else ""
        except yaml.YAMLError as error:
            raise errors.InputError(
                f"-p {item!r}: the value is not valid YAML ({str(error).splitlines()[0]}); "
                f"quote text, write lists as [0, 1]"
            ) from error
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

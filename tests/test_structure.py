"""The package's shape: at most 12 entries at its top, its layers kept (import-linter's contract in pyproject.toml),
a function importing late only where the short list below says why, the size rules, and one home for the stage
files' names."""

import ast
import re
import subprocess
import sys
from pathlib import Path

from hpa_utils import stages
from hpa_utils.system import environment

PACKAGE = environment.REPO_ROOT / "hpa_utils"
# The only imports a function may make, and why: everything else is imported at the top of its module.
LATE_IMPORTS = {
    "hpa_utils": (
        {"hpa_utils.pipeline"},
        "`import hpa_utils` stays light: the command line and 00_eda start without TensorFlow",
    ),
    "hpa_utils.pipeline.stage_run": (
        {"hpa_utils.system", "hpa_utils.training", "hpa_utils.pipeline", "hpa_utils.results", "hpa_utils.stages"},
        "TensorFlow: imported by the stages that train, not by 00_eda, which reads the data alone",
    ),
    "hpa_utils.training.augment": ({"hpa_utils.system"}, "imgaug, an optional package: only AUGMENT=strong needs it"),
    "hpa_utils.dataset.png": ({"pywuffs", "pywuffs.aux"}, "pywuffs, optional: the faster PNG decoder, if installed"),
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_TOP_ENTRIES = 400, 60, 12


def module_name(path: Path) -> str:
    """``hpa_utils/training/augment.py`` -> ``hpa_utils.training.augment`` (a package's ``__init__``: the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(imported module, inside a function?) for each import of a module (``from hpa_utils.x import y``: the
    module ``hpa_utils.x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name, id(node) in inside


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_at_most_12_entries_at_its_top_each_sub_package_saying_what_it_holds():
    entries = sorted(path.name for path in PACKAGE.iterdir() if path.name != "__pycache__")
    assert len(entries) <= MAX_TOP_ENTRIES, entries
    for folder in PACKAGE.rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            init = folder / "__init__.py"
            assert init.exists() and ast.get_docstring(ast.parse(init.read_text())), f"{folder}: no docstring"


def test_import_linter_keeps_the_layers_of_pyproject_toml():
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([linter, "--no-cache"], capture_output=True, text=True, cwd=environment.REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_function_imports_only_what_the_short_list_allows():
    late = {}
    for path in modules():
        for name, inside in imports(path):
            if inside:
                late.setdefault(module_name(path), set()).add(name)
    allowed = {source: names for source, (names, _) in LATE_IMPORTS.items()}
    assert {
        source: names - allowed.get(source, set())
        for source, names in late.items()
        if names - allowed.get(source, set())
    } == {}


def test_no_module_over_400_lines_and_no_function_over_60_in_the_package_and_the_benchmarks():
    benchmarks = sorted((environment.REPO_ROOT / "benchmarks").glob("*.py"))
    assert len(benchmarks) > 10
    too_long = []
    for path in modules() + benchmarks:
        text, name = path.read_text(encoding="utf-8"), path.relative_to(environment.REPO_ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}: {node.name} has {length} lines")
    assert too_long == []


def string_literals(path: Path):
    """Every string constant of a module that is not a docstring (messages and f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_only_the_stage_record_spells_a_stage_files_name():
    names = [value for name, value in vars(stages).items() if name.endswith("_FILE")]
    assert "metrics.json" in names and len(names) >= 8
    spelled = {
        f"{path.relative_to(PACKAGE)}: {text!r}"
        for path in modules()
        if path != PACKAGE / "stages" / "__init__.py" and "synthetic" not in path.parts
        for text in string_literals(path)
        for name in names
        if re.search(r"(?<![\w.])" + re.escape(name), text)  # "sample_submission.csv" is not "submission.csv"
    }
    assert spelled == set()


# Raised by name but not the package's own errors, and why: the command line logs these with their traceback.
OTHER_RAISES = {
    "OSError": "an encoder that failed (cv2 returned no image): a library's failure, not bad input",
    "pickle.UnpicklingError": "inside the restricted unpickler; its caller turns it into a TorchFileError",
}


def test_every_error_the_package_raises_by_name_is_its_own():
    import builtins
    import importlib

    from hpa_utils import errors

    others = set()
    for path in modules():
        if path.name == "__main__.py":  # runs the command line when imported
            continue
        module = importlib.import_module(module_name(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            if not isinstance(node.exc.func, (ast.Name, ast.Attribute)):  # type(error)(...): a cause re-worded
                continue
            name = ast.unparse(node.exc.func)
            found = module if hasattr(module, name.split(".")[0]) else builtins
            for part in name.split("."):
                found = getattr(found, part, None) if found is not None else None
            if isinstance(found, type) and not issubclass(found, errors.HpaError):
                others.add(name)
            elif found is None:
                others.add(f"{name} (not found in {module.__name__})")
    assert others - set(OTHER_RAISES) == set()

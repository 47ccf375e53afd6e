"""The package's shape: one module names a stage's files, imports point down, only the benchmarks' tests import them."""

import ast
import re
from pathlib import Path

from hpa_utils import environment, stages

PACKAGE = environment.REPO_ROOT / "hpa_utils"
STAGE_FILES = [value for name, value in vars(stages).items() if name.endswith("_FILE")]


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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_only_the_stage_record_spells_a_stage_files_name():
    assert "metrics.json" in STAGE_FILES and len(STAGE_FILES) >= 8
    spelled = {
        f"{path.relative_to(PACKAGE)}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "stages.py" and "synthetic" not in path.parts
        for text in string_literals(path)
        for name in STAGE_FILES
        if re.search(r"(?<![\w.])" + re.escape(name), text)  # "sample_submission.csv" is not "submission.csv"
    }
    assert spelled == set()


def test_environment_does_not_import_the_image_generator():
    assert not {name for name in imported_modules(PACKAGE / "environment.py") if "synthetic" in name}


def test_the_downloader_owns_the_servers_address_rule():
    assert not {name for name in imported_modules(PACKAGE / "external" / "downloader.py") if "synthetic" in name}


def test_only_the_benchmarks_own_tests_import_them():
    importers = {
        path.name
        for path in sorted((environment.REPO_ROOT / "tests").glob("*.py"))
        if any(name == "benchmarks" or name.startswith("benchmarks.") for name in imported_modules(path))
    }
    assert importers <= {"test_benchmarks.py"}

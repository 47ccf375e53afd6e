"""The package's shape: one layering contract (docs/package.md's table: imports point down, nothing circles, and a
function imports late only where the short list below says why), the size rules, and one home for the stage files'
names."""

import ast
import re
from pathlib import Path

from hpa_utils import environment, stages

PACKAGE = environment.REPO_ROOT / "hpa_utils"
LAYERS_TABLE = environment.REPO_ROOT / "docs" / "package.md"
# The only imports a function may make, and why: everything else is imported at the top of its module.
LATE_IMPORTS = {
    "__init__": ({"stage_run"}, "`import hpa_utils` stays light: the command line and 00_eda start without TensorFlow"),
    "stage_run": (
        {"budget", "hardware", "training", "training_data", "evaluation", "stage_model"},
        "TensorFlow: imported by the stages that train, not by 00_eda, which reads the data alone",
    ),
    "augment": ({"imgaug_numpy", "offline_wheels"}, "imgaug, an optional package: only AUGMENT=strong needs it"),
    "dataset": ({"pywuffs", "pywuffs.aux"}, "pywuffs, optional: the faster PNG decoder, where it installed"),
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def layers() -> dict[str, int]:
    """{top-level module or sub-package: its layer's number}, from docs/package.md's table of layers."""
    found = {}
    for line in LAYERS_TABLE.read_text().splitlines():
        row = re.match(r"\| (\d) [^|]+\| (.+?) \|", line)
        if row:
            for name in re.findall(r"`([a-z_0-9]+)/?`", row.group(2)):
                found[name] = int(row.group(1))
    return found


def unit(path: Path) -> str:
    """A module's unit in the layering: its sub-package, or the module itself."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports(path: Path):
    """(imported name, inside a function?) for each import of a module; ``hpa_utils.x.y`` reduced to ``x``."""
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
            names = [node.module] if node.module != "hpa_utils" else [f"hpa_utils.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            local = name.removeprefix("hpa_utils.").split(".")[0] if name.startswith("hpa_utils.") else name
            yield local if name.startswith("hpa_utils.") else name, id(node) in inside


def modules():
    return sorted(path for path in PACKAGE.rglob("*.py") if "data" not in path.relative_to(PACKAGE).parts[:1])


def test_every_module_has_a_layer_and_imports_point_down_without_a_circle():
    layer = layers()
    units = {unit(path) for path in modules()}
    assert units - {"__init__", "__main__"} <= set(layer), f"not in docs/package.md's table: {units - set(layer)}"
    edges = {}
    for path in modules():
        source = unit(path)
        for name, _ in imports(path):
            if name in layer and name != source and source in layer:
                assert layer[name] <= layer[source], f"{path.relative_to(PACKAGE)} imports {name}: an upper layer"
                edges.setdefault(source, set()).add(name)

    def reaches(start, goal, seen=()):
        return any(
            step == goal or (step not in seen and reaches(step, goal, (*seen, step))) for step in edges.get(start, ())
        )

    circles = sorted(source for source in edges if reaches(source, source))
    assert circles == [], f"these import themselves through others: {circles}"


def test_a_function_imports_only_what_the_short_list_allows():
    late = {}
    for path in modules():
        source = path.stem if path.parent == PACKAGE else unit(path)
        for name, inside in imports(path):
            if inside:
                late.setdefault(source, set()).add(name)
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
        if path != PACKAGE / "stages.py" and "synthetic" not in path.parts
        for text in string_literals(path)
        for name in names
        if re.search(r"(?<![\w.])" + re.escape(name), text)  # "sample_submission.csv" is not "submission.csv"
    }
    assert spelled == set()

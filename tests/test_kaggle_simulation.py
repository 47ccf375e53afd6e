"""A simulated Kaggle: the exported kernels run in order, each with only the inputs its kernel-metadata.json names.

Every kernel gets its own input root (``HPA_KAGGLE_INPUT``) holding, in the chosen mount layout, the
competition data, the exported hpa-utils dataset and the working folders of its upstream kernels;
it runs through papermill with ``KAGGLE_KERNEL_RUN_TYPE=Batch``, its cwd the stand-in of
/kaggle/working, no parameters (the exported defaults are what Kaggle runs) and nothing of the
repository on its path. No real Kaggle run is possible from here; this is the closest check.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from hpa_utils import kaggle, stages
from hpa_utils.dataset import synthetic
from hpa_utils.pipeline import runner
from hpa_utils.results import predict
from hpa_utils.system import environment

# slow: each layout runs the five exported kernels through papermill (about 1.5 minutes per layout)
pytestmark = pytest.mark.integration
USER = "someone"


def mount_point(kind: str, reference: str, layout: str) -> str:
    """Where Kaggle mounts an input, relative to /kaggle/input: today nested by kind and owner, earlier flat."""
    slug = reference.split("/")[-1]
    if layout == "older":
        return slug
    if kind == "competition":
        return f"competitions/{slug}"
    owner = reference.split("/")[0]
    return f"{'datasets' if kind == 'dataset' else 'notebooks'}/{owner}/{slug}"


def attach(source: Path, target: Path) -> None:
    """Mount ``source`` at ``target``: real folders with hard-linked files, as cheap as a symlink."""
    shutil.copytree(source, target, copy_function=os.link)


def snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def run_kernels(
    exported: Path, competition: Path, root: Path, layout: str, blocked: Path | None = None, machine: dict | None = None
) -> dict:
    """Run every exported kernel in order on a simulated Kaggle; {its folder: (working folder, executed notebook)}.
    ``machine``: more of the kernels' environment (JAX's simulated devices for a TPU's; with it, 00_eda, a CPU
    kernel that no other kernel reads, is left out)."""
    sources = {
        "dataset": {f"{USER}/{kaggle.DATASET_SLUG}": exported / kaggle.DATASET_SLUG},
        "competition": {environment.COMPETITION: competition},
        "kernel": {},
    }
    results = {}
    for row in json.loads((exported / kaggle.MARKER).read_text())["kernels"]:  # in the order UPLOAD.md pushes them
        stage = row["folder"]
        if machine and stage == "00_eda":
            continue
        metadata = json.loads((exported / stage / kaggle.METADATA_FILE).read_text())
        kernel_root = root / metadata["id"].split("/")[1]
        input_root, working = kernel_root / "input", kernel_root / "working"
        working.mkdir(parents=True)
        for kind, key in (
            ("competition", "competition_sources"),
            ("dataset", "dataset_sources"),
            ("kernel", "kernel_sources"),
        ):
            for reference in metadata[key]:
                attach(sources[kind][reference], input_root / mount_point(kind, reference, layout))
        before = snapshot(input_root)
        executed = kernel_root / metadata["code_file"]
        runner.execute_notebook(
            exported / stage / metadata["code_file"],
            executed,
            injected={},
            cwd=working,
            kernel_environment={
                "KAGGLE_KERNEL_RUN_TYPE": "Batch",
                environment.INPUT_ROOT_VARIABLE: str(input_root),
                "PYTHONPATH": str(blocked) if blocked else None,
                "TMPDIR": str(kernel_root / "tmp"),
                **(machine or {}),
            },
            label=f"{layout}: {stage}",
        )
        assert snapshot(input_root) == before, f"{stage} wrote into its inputs, which are read-only on Kaggle"
        sources["kernel"][metadata["id"]] = working  # the next kernels mount this kernel's output
        results[stage] = (working, executed)
    return results


def outputs_text(notebook_path: Path) -> str:
    notebook = nbformat.read(notebook_path, as_version=4)
    return "\n".join(
        output.get("text", "") + output.get("evalue", "")  # printed text and error messages
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kaggle-simulation")
    return kaggle.export(USER, folder / "kaggle_export", preset="smoke")  # tiny images, the small backbone


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    """A small competition dataset in the Kaggle layout, as the competition's data would be mounted."""
    return synthetic.generate(
        tmp_path_factory.mktemp("competition") / "data",
        n_train=64,
        n_test=16,
        image_size=64,
        seed=0,
        min_per_class=1,
        progress=False,
    )


def check_submission(results: dict, competition: Path) -> pd.DataFrame:
    working, _ = results["04_kfold"]
    submission = pd.read_csv(working / "04_kfold" / "submission.csv", keep_default_na=False)
    predict.validate_submission(submission, pd.read_csv(competition / "sample_submission.csv"))
    metrics = json.loads((working / "04_kfold" / "metrics.json").read_text())
    test_labels = pd.read_csv(competition / "test_labels.csv", keep_default_na=False)  # the embedded data has them
    assert metrics["test_f1"] == pytest.approx(predict.score_submission(submission, test_labels))
    return submission


def test_the_package_is_not_importable_without_the_dataset(tmp_path):
    variables = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", "import hpa_utils"],
        cwd=tmp_path,
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "No module named 'hpa_utils'" in result.stderr  # so a kernel's came from input


def test_a_kernel_without_its_upstream_stops_with_what_to_attach(exported, competition, tmp_path):
    input_root, working = tmp_path / "input", tmp_path / "working"
    working.mkdir()
    attach(exported / kaggle.DATASET_SLUG, input_root / "datasets" / USER / kaggle.DATASET_SLUG)
    attach(competition, input_root / "competitions" / environment.COMPETITION)
    with pytest.raises(
        stages.StageStopped,
        match="StageMissingError: stage 02_warmup_finetune not found.*Add the output "
        "of the kernel hpa-02-warmup-finetune",
    ):
        runner.execute_notebook(
            exported / "03_upscale" / "hpa-03-upscale.ipynb",
            tmp_path / "03.ipynb",
            {},
            cwd=working,
            kernel_environment={
                "KAGGLE_KERNEL_RUN_TYPE": "Batch",
                "PYTHONPATH": None,
                environment.INPUT_ROOT_VARIABLE: str(input_root),
            },
        )
    message = outputs_text(tmp_path / "03.ipynb")
    assert f"{input_root} holds:\n  competitions/\n    {environment.COMPETITION}/\n  datasets/\n    {USER}/" in message


# slow: the four kernels before 04, two fold kernels and the merge kernel (about 1.5 minutes)
def test_todays_layout_runs_the_kernels_and_the_fold_kernels_to_a_valid_submission(tmp_path, competition):
    exported = kaggle.export(USER, tmp_path / "kaggle_export", preset="smoke", fold_kernels=True)
    root = tmp_path / "kaggle"
    results = run_kernels(exported, competition, root, "today")
    assert list(results)[-3:] == ["04_kfold_fold_0", "04_kfold_fold_1", "04_kfold"]
    _, eda = results["00_eda"]
    assert f"00_eda: data {root}/hpa-00-eda/input/competitions/{environment.COMPETITION} ->" in outputs_text(eda)
    _, upscale = results["03_upscale"]
    assert (
        f"loaded by name from {root}/hpa-03-upscale/input/notebooks/{USER}/hpa-02-warmup-finetune/"
        "02_warmup_finetune/model.h5: 20 layers; new (not in the file): upscale_adapter"
    ) in outputs_text(upscale)  # input_bn, the small backbone's 8 convolutions and 8 BatchNormalizations, the head's 3
    for fold in (0, 1):
        working, trained = results[f"04_kfold_fold_{fold}"]
        assert sorted(path.name for path in working.iterdir()) == ["04_kfold"]  # a kernel writes only its stage
        assert sorted(path.name for path in (working / "04_kfold").glob("fold_*")) == [f"fold_{fold}"]
        assert not (working / "04_kfold" / "metrics.json").exists()  # one fold: no merge there
        assert "each fold starts from small with none weights; BatchNorm training" in outputs_text(trained)  # not 03's
    submission = check_submission(results, competition)
    working, merge = results["04_kfold"]
    assert sorted(path.name for path in working.iterdir()) == ["04_kfold"]
    metrics = json.loads((working / "04_kfold" / "metrics.json").read_text())
    assert metrics["folds_finished"] == [0, 1] and metrics["images_scored"] == 64
    for fold in (0, 1):
        assert f"fold {fold} from {root}/hpa-04-kfold/input/notebooks/{USER}/hpa-04-kfold-fold-{fold}" in (
            outputs_text(merge)
        )
    assert not list((working / "04_kfold").rglob("*.h5"))  # the merge copies predictions, not models
    assert len(submission) == 16
    shown = [
        output["data"]["text/plain"]
        for cell in nbformat.read(merge, as_version=4).cells
        for output in cell.get("outputs", [])
        if "text/plain" in output.get("data", {})
    ]
    assert any(re.search(r"03_upscale +validation \(\d+\)", table) for table in shown)  # 03's, from its kernel


# slow: the four kernels after 00 of a TPU export on Keras' JAX backend, in the older layout (about 1.5 minutes alone)
def test_a_tpu_export_runs_its_kernels_on_jax_in_the_older_layout_in_an_image_like_kaggles_tpu_image(
    tmp_path, competition, without_wheel_packages
):
    exported = kaggle.export(USER, tmp_path / "kaggle_export", preset="smoke", accelerator="tpu")
    for stage in ("01_baseline", "04_kfold"):
        metadata = json.loads((exported / stage / kaggle.METADATA_FILE).read_text())
        assert metadata["machine_shape"] == "TpuV5E8" and metadata["enable_tpu"] and not metadata["enable_gpu"]
        assert "docker_image" not in metadata  # a pinned image would run a TPU push on the CPU image
    eda = json.loads((exported / "00_eda" / kaggle.METADATA_FILE).read_text())
    assert "machine_shape" not in eda and not eda["enable_tpu"]
    # Kaggle's TPU image: TensorFlow's CPU build, JAX and Keras; no imgaug, iterstrat or pywuffs. Eight chips there,
    # two simulated devices here (four, and a batch they do not divide: tests/test_jax.py).
    (without_wheel_packages / "pywuffs").mkdir()
    (without_wheel_packages / "pywuffs" / "__init__.py").write_text(
        "raise ModuleNotFoundError('no pywuffs', name='pywuffs')"
    )
    root = tmp_path / "kaggle"  # the older layout, /kaggle/input/<slug>/, as older kernels saw it
    results = run_kernels(exported, competition, root, "older", without_wheel_packages, {"JAX_NUM_CPU_DEVICES": "2"})
    check_submission(results, competition)
    _, baseline = results["01_baseline"]
    assert (
        f"iterstrat: not installed here, imported from {root}/hpa-01-baseline/input/hpa-utils/wheels/"
        "iterative_stratification-"
    ) in outputs_text(baseline)
    # AUGMENT=dihedral runs in TensorFlow's tf.data: 02 needs no imgaug (only "strong" does: test_offline_wheels.py)
    _, warmup = results["02_warmup_finetune"]
    assert "imgaug: not installed here" not in outputs_text(warmup) and "Traceback" not in outputs_text(warmup)
    for stage in ("01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"):
        working, _ = results[stage]
        metrics = json.loads((working / stage / "metrics.json").read_text())
        assert (metrics["backend"], metrics["device_kind"], metrics["devices"]) == ("jax", "CPU", 2), stage

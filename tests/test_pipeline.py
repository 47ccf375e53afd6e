"""The smoke pipeline through papermill: real notebooks, real (tiny) models, the files each stage promises."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpa_utils import stages
from hpa_utils.results import metrics
from hpa_utils.stages import stage_files
from hpa_utils.system import environment

# slow: the smoke pipeline through papermill (00 -> 04, about 1.5 minutes), run once and shared by these tests
pytestmark = pytest.mark.integration
REPO = environment.REPO_ROOT


def run_cli(*arguments, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "hpa_utils", "run", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fingerprint(folder: Path) -> dict:
    """{relative path: (size, mtime_ns, sha1)} of every file below folder."""
    return {
        str(path.relative_to(folder)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha1(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    result = run_cli("--preset", "smoke", "--out", str(run_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout + result.stderr


def test_smoke_run_writes_every_stage(smoke_run):
    run_dir, output = smoke_run
    for stage in stages.STAGES:
        assert (run_dir / f"{stage}.ipynb").is_file() and (run_dir / f"{stage}.html").is_file()
        assert (run_dir / stage / "metrics.json").is_file()
    eda_html = (run_dir / "00_eda.html").read_text()
    assert eda_html.count("image/png") >= 6, "the EDA plots are in the HTML copy"
    for stage in ("01_baseline", "02_warmup_finetune", "03_upscale"):
        scores = stage_files.read_metrics(run_dir / stage)
        saved = stage_files.read_predictions(run_dir / stage)  # what the stage predicted for its validation images
        at_half = metrics.apply_thresholds(saved["probabilities"], 0.5, at_least_one=False)
        assert scores["f1_at_0.5"] == pytest.approx(metrics.macro_f1(saved["targets"], at_half)), stage
        assert scores["images_scored"] == len(saved["ids"]) and "scored_on" not in scores  # the record says it
        assert len(scores["per_class_f1"]) == 28 and (run_dir / stage / "model.h5").is_file()
    assert "stage" in output and "report:" in output  # the one-screen summary


def test_every_score_has_its_interval_and_the_console_stays_readable(smoke_run):
    run_dir, output = smoke_run
    for stage in ("01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"):
        scores, saved = stage_files.read_metrics(run_dir / stage), stage_files.read_predictions(run_dir / stage)
        # the headline and its interval are those of the saved predictions at the saved threshold (a stage's
        # interval is a bootstrap over its images, so the score itself need not lie inside it)
        predicted = metrics.apply_thresholds(saved["probabilities"], saved["threshold"], at_least_one=False)
        assert scores["f1_at_best_global"] == pytest.approx(metrics.macro_f1(saved["targets"], predicted)), stage
        assert scores["f1_at_best_global_ci95"] == pytest.approx(metrics.f1_interval(saved["targets"], predicted))
        assert f"{stage}: done in" in output and (run_dir / f"{stage}.log").is_file()
    lines = [line for chunk in output.splitlines() for line in chunk.split("\r")]
    assert not [line for line in lines if line.startswith(("I0000", "E0000", "W0000"))]
    assert "Kernel is running over TCP" not in output and "absl::InitializeLog" not in output
    assert "absl::InitializeLog" in (run_dir / "01_baseline.log").read_text()  # what the console was spared is kept
    summary = subprocess.run(
        [sys.executable, "-m", "hpa_utils", "summary", str(run_dir), "--markdown"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    table = summary.stdout.splitlines()
    assert table[0].startswith("| stage | scored on (images) |") and len(table) == 6
    assert "| 04_kfold | out of fold (64) |" in summary.stdout


def test_stages_share_one_validation_split(smoke_run):
    run_dir, _ = smoke_run
    splits = [
        pd.read_csv(run_dir / stage / "validation_split.csv")
        for stage in ("01_baseline", "02_warmup_finetune", "03_upscale")
    ]
    assert all(split.equals(splits[0]) for split in splits)


def test_submission_keeps_sample_submission_ids_and_order(smoke_run):
    run_dir, _ = smoke_run
    data_dir = Path(json.loads((run_dir / "00_eda" / "metrics.json").read_text())["data_dir"])
    submission = pd.read_csv(run_dir / "04_kfold" / "submission.csv", dtype=str, keep_default_na=False)
    sample = pd.read_csv(data_dir / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert submission["Id"].tolist() == sample["Id"].tolist()
    assert all(label and 0 <= int(label) <= 27 for text in submission["Predicted"] for label in text.split())
    thresholds = json.loads((run_dir / "04_kfold" / "thresholds.json").read_text())
    assert len(thresholds["per_class"]) == 28
    scores = stage_files.read_metrics(run_dir / "04_kfold")
    assert {"f1_at_0.5", "f1_at_best_global", "f1_at_per_class", "test_f1"} <= set(scores)
    assert not [key for key in scores if key.startswith(("val_", "oof_f1"))], "04's headline is stored once"
    assert scores["oof_images_seen_in_training"] == 0, "every fold starts from the pretrained backbone, not from 03"
    report = (run_dir / "report.html").read_text()
    assert "04_kfold" in report and 'href="02_warmup_finetune.html"' in report


# slow: runs 04_kfold once more, its fold 1 alone (a run of one fold, no merge: the fold kernels' test)
def test_folds_trained_in_separate_runs_merge_like_one_run(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    split_run = tmp_path / "split"
    shutil.copytree(run_dir, split_run, ignore=shutil.ignore_patterns("04_kfold*"))
    for finished in (stages.FOLDS_FILE, "fold_0"):  # fold 0 as an earlier run of FOLDS=[0] left it
        copy = shutil.copytree if finished == "fold_0" else shutil.copy2
        (split_run / "04_kfold").mkdir(exist_ok=True)
        copy(run_dir / "04_kfold" / finished, split_run / "04_kfold" / finished)
    result = run_cli("--resume", str(split_run), "--only", "04", "-p", "FOLDS=[1]")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert stage_files.read_metrics(split_run / "04_kfold")["folds_finished"] == [0, 1]  # the earlier fold merged
    oof = np.load(split_run / "04_kfold" / "oof.npy")
    whole = np.load(run_dir / "04_kfold" / "oof.npy")
    assert oof.shape == whole.shape and not np.isnan(oof).any(), "every training image predicted exactly once"
    folds = pd.read_csv(split_run / "04_kfold" / "folds.csv")
    assert folds.equals(pd.read_csv(run_dir / "04_kfold" / "folds.csv"))
    assert (split_run / "04_kfold" / "submission.csv").is_file()
    test_predictions = [np.load(split_run / "04_kfold" / f"fold_{fold}" / "test_pred.npy") for fold in (0, 1)]
    np.testing.assert_allclose(np.load(split_run / "04_kfold" / "test_pred.npy"), np.mean(test_predictions, axis=0))


# slow: runs 04_kfold once more, from 03's model
def test_04_started_from_03_scores_and_tunes_only_on_images_03_never_trained_on(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    leaky = tmp_path / "leaky"
    shutil.copytree(run_dir, leaky, ignore=shutil.ignore_patterns("04_kfold*"))
    result = run_cli("--resume", str(leaky), "--only", "04", "-p", "START_FROM=03_upscale")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    split = pd.read_csv(leaky / "03_upscale" / stages.SPLIT_FILE)
    unseen = split.loc[split["is_validation"].astype(bool), "Id"].tolist()
    scores, saved = stage_files.read_metrics(leaky / "04_kfold"), stage_files.read_predictions(leaky / "04_kfold")
    assert scores["oof_images_seen_in_training"] == len(split) - len(unseen) > 0  # the leak is counted ...
    assert sorted(saved["ids"]) == sorted(unseen) and scores["images_scored"] == len(unseen)  # ... and kept out
    threshold, _ = metrics.best_global_threshold(saved["targets"], saved["probabilities"])
    assert scores["best_global_threshold"] == threshold, "the threshold is tuned on the unseen images alone"
    notebook = (leaky / "04_kfold.ipynb").read_text()
    assert f"START_FROM 03_upscale trained on {len(split) - len(unseen)} of the {len(split)} images" in notebook


# slow: runs 03_upscale until it is killed, then 03 and 04 again
def test_killed_run_resumes_without_touching_finished_stages(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed, ignore=shutil.ignore_patterns("04_*", "report.html"))
    finished = ("00_eda", "01_baseline", "02_warmup_finetune", "03_upscale")
    before = {stage: fingerprint(resumed / stage) for stage in finished}
    notebooks_before = {stage: fingerprint(resumed)[f"{stage}.ipynb"] for stage in finished}
    process = subprocess.Popen(
        [sys.executable, "-m", "hpa_utils", "run", "--resume", str(resumed)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (resumed / "04_kfold" / stages.FOLDS_FILE).is_file() and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # the runner and its kernel, mid-training
    process.wait()
    assert not (resumed / "04_kfold" / "metrics.json").is_file()
    result = run_cli("--resume", str(resumed))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert {stage: fingerprint(resumed / stage) for stage in before} == before
    assert {stage: fingerprint(resumed)[f"{stage}.ipynb"] for stage in before} == notebooks_before
    for stage in stages.STAGES:
        assert (resumed / stage / "metrics.json").is_file()
    leftovers = [path for path in resumed.rglob("*") if ".tmp" in path.name]
    assert leftovers == [], "no half-written file survives"
    assert "kept" in result.stdout


# slow: starts a notebook kernel (TensorFlow's import) for a stage that fails early
def test_failing_cell_names_notebook_cell_and_executed_copy(tmp_path):
    run_dir = tmp_path / "bad"
    result = run_cli("--preset", "smoke", "--out", str(run_dir), "--only", "03", timeout=600)
    assert result.returncode == 1
    assert "03_upscale failed in cell" in result.stderr and "StageMissingError" in result.stderr
    assert "Run notebooks/02_warmup_finetune.ipynb first" in result.stderr
    assert str(run_dir / "03_upscale.ipynb") in result.stderr and (run_dir / "03_upscale.html").is_file()
    assert "Traceback" not in result.stderr.split("error:")[-1]


# slow: runs 01_baseline once more, its images decoded on the fly
def test_a_stage_streaming_its_images_scores_exactly_as_from_the_cache(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    streamed = tmp_path / "streamed"
    result = run_cli("--preset", "smoke", "--out", str(streamed), "--only", "01", "-p", "CACHE=stream")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "decoded on the fly as (64, 32, 32, 3) uint8" in (streamed / "01_baseline.ipynb").read_text()
    cached, decoded = (
        json.loads((folder / "01_baseline" / "metrics.json").read_text()) for folder in (run_dir, streamed)
    )
    assert decoded["f1_at_best_global"] == cached["f1_at_best_global"]
    np.testing.assert_array_equal(
        stage_files.read_predictions(streamed / "01_baseline")["probabilities"],
        stage_files.read_predictions(run_dir / "01_baseline")["probabilities"],
    )


class NotebookCells:
    """A notebook's cells executed in this process, as papermill runs them for ``run_dir`` with the smoke preset's
    parameters injected after the parameters cell: ``until(text)`` runs the cells up to the next one holding it."""

    def __init__(self, stage: str, run_dir: Path):
        from hpa_utils.pipeline import runner
        from hpa_utils.stages import parameters

        notebook = json.loads((REPO / "notebooks" / f"{stage}.ipynb").read_text())
        self.sources = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
        injected = runner.stage_parameters(parameters.load_preset("smoke"), {}, stage, run_dir, None)
        self.sources.insert(1, "\n".join(f"{name} = {value!r}" for name, value in injected.items()))
        self.namespace, self.next = {"display": print}, 0

    def until(self, text: str) -> dict:
        here = os.getcwd()
        os.chdir(REPO / "notebooks")  # where papermill runs the notebooks
        try:
            while True:
                source, self.next = self.sources[self.next], self.next + 1
                exec(compile(source, f"cell {self.next}", "exec"), self.namespace)
                if text in source:
                    return self.namespace
        finally:
            os.chdir(here)


def backbone_kernels(model) -> list:
    from hpa_utils import models

    return [layer.kernel.numpy().copy() for layer in models.backbone_layers(model) if hasattr(layer, "kernel")]


def test_02s_warm_up_trains_the_head_alone_and_the_fine_tuning_every_layer(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("02_*", "03_*", "04_*"))
    cells = NotebookCells("02_warmup_finetune", tmp_path / "run")
    model = cells.until("fitting.make_callbacks(")["model"]
    built, head = backbone_kernels(model), model.get_layer("head_dense").kernel.numpy().copy()
    cells.until('phase="warmup"')
    warmed = backbone_kernels(model)
    assert all(np.array_equal(a, b) for a, b in zip(built, warmed)), "the warm-up leaves the backbone as it was"
    assert not np.array_equal(head, model.get_layer("head_dense").kernel.numpy()), "while the head learns"
    cells.until('phase="finetune"')
    assert not any(np.array_equal(a, b) for a, b in zip(warmed, backbone_kernels(model))), "then every layer learns"


def test_03_inserts_the_named_adapter_and_loads_02s_weights_unchanged(smoke_run):
    from hpa_utils.stages import stage_model

    run_dir, _ = smoke_run
    namespace = NotebookCells("03_upscale", run_dir).until("models.loaded_by_name(")
    model = namespace["model"]
    adapter = model.get_layer("upscale_adapter")  # the notebook's Conv2D (rebuilt with the model for RGBY)
    assert adapter.get_config() == namespace["adapter"].get_config() and namespace["new"] == ["upscale_adapter"]
    assert adapter.output.shape[1:3] == (2, 2)  # 03 at 64 px brought back to 02's grid at 32 px
    source = stage_model.model_from_stage(run_dir / "02_warmup_finetune")
    for layer in [layer for layer in source.layers if layer.weights]:
        for loaded, saved in zip(model.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True):
            np.testing.assert_array_equal(loaded, saved, err_msg=layer.name)


def test_04s_submission_is_the_mean_of_the_folds_test_predictions_thresholded(smoke_run):
    from hpa_utils.dataset import labels

    stage = smoke_run[0] / "04_kfold"
    folds = sorted(stage.glob("fold_*"))
    mean = np.mean([np.load(fold / "test_pred.npy") for fold in folds], axis=0)
    thresholds = json.loads((stage / "thresholds.json").read_text())["per_class"]
    submission = pd.read_csv(stage / "submission.csv", dtype=str, keep_default_na=False)
    submitted = labels.to_multi_hot([[int(label) for label in text.split()] for text in submission["Predicted"]])
    assert len(folds) == 2
    np.testing.assert_array_equal(submitted, metrics.apply_thresholds(mean, thresholds, at_least_one=True))


def test_each_training_stage_saves_config_json_and_the_next_rebuilds_its_model_from_it(smoke_run):
    from hpa_utils.stages import stage_config

    run_dir, _ = smoke_run
    for stage in stages.TRAINING_STAGES:
        saved = json.loads((run_dir / stage / stages.CONFIG_FILE).read_text())
        assert saved["stage"] == stage
        assert saved["parameters"] == stage_files.read_metrics(run_dir / stage)["parameters"]
    assert stage_config.read_model(run_dir / "02_warmup_finetune").image_size == 32  # the smoke preset's
    upscaled = stage_config.read_model(run_dir / "03_upscale")
    assert (upscaled.image_size, upscaled.source_image_size) == (64, 32)  # 03 rebuilt 02's head with the adapter
    assert stage_config.read_model(run_dir / "04_kfold").image_size == 64


TENSORFLOW_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|cuInit|absl::|oneDNN|Warning: ")
PROGRESS_BAR = re.compile(r"\d+%\|")


def displayed(text: str) -> list[str]:
    """The lines a notebook shows for a stream's text: a carriage return overwrites its line, as in Jupyter."""
    return [line.split("\r")[-1] for line in text.split("\n") if line.split("\r")[-1].strip()]


def test_the_executed_notebooks_are_quiet(smoke_run):
    run_dir, _ = smoke_run
    for stage in stages.STAGES:
        notebook = json.loads((run_dir / f"{stage}.ipynb").read_text())
        for index, cell in enumerate(notebook["cells"]):
            streams = "".join("".join(output.get("text", "")) for output in cell.get("outputs", []))
            lines = displayed(streams)
            noise = [line for line in lines if TENSORFLOW_LOG.search(line)]
            assert noise == [], f"{stage} cell {index}: {noise[:3]}"  # TensorFlow's C++ lines go to the stage's log
            bars = [line for line in lines if PROGRESS_BAR.search(line)]
            assert len(bars) <= 1, f"{stage} cell {index}: {bars}"


def test_01s_model_and_compile_in_keras_lines_agree_with_the_packages_layer_by_layer(smoke_run, tmp_path):
    from hpa_utils import models
    from hpa_utils.training import fitting

    run_dir, _ = smoke_run
    shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("01_*", "02_*", "03_*", "04_*"))
    namespace = NotebookCells("01_baseline", tmp_path / "run").until("model.compile(")
    written = namespace["model"]
    built = models.build_model(
        namespace["BACKBONE"],
        namespace["IMAGE_SIZE"],
        namespace["CHANNELS"],
        namespace["WEIGHTS"],
        dropout=namespace["DROPOUT"],
        freeze_batch_norm=namespace["frozen_batch_norm"],
    )
    assert len(written.layers) == len(built.layers) > 10
    for mine, theirs in zip(written.layers, built.layers):
        assert (mine.name, type(mine), mine.trainable) == (theirs.name, type(theirs), theirs.trainable)
        assert mine.output.shape == theirs.output.shape, mine.name
        assert [w.shape for w in mine.weights] == [w.shape for w in theirs.weights], mine.name
        assert mine.get_config() == theirs.get_config(), mine.name  # units, rates, activations, momentum, dtype
    fitting.compile_model(built, namespace["LEARNING_RATE"], namespace["LOSS"])
    compiled = [model.get_compile_config() for model in (written, built)]
    for config in compiled:
        config["optimizer"]["config"].pop("name")  # adam, adam_1: Keras numbers the second
    assert compiled[0] == compiled[1]  # Adam at the rate, the loss, the metrics

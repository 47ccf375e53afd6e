"""The smoke pipeline on other hardware and under Kaggle's limits: two replicas with mixed precision switched
between stages (and EXTERNAL_DIR's images), and a time limit already past. A file of its own so that `make test`'s
workers share the load."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from hpa_utils import dataset, stages
from hpa_utils.dataset import external
from hpa_utils.dataset.synthetic import hpav18
from hpa_utils.system import environment

pytestmark = pytest.mark.integration  # each test runs the smoke pipeline's training stages through papermill
REPO = environment.REPO_ROOT


def run_cli(*arguments, timeout=900, environment_variables=None):
    return subprocess.run(
        [sys.executable, "-m", "hpa_utils", "run", *arguments],
        cwd=REPO,
        env={**os.environ, **(environment_variables or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# slow: the smoke pipeline's 02 and 04 again (about 1 minute), as on Kaggle's T4 x2: two replicas
def test_two_replicas_mixed_precision_switched_between_stages_and_external_images_run_the_pipeline(tmp_path):
    """02 mixed, 04 auto (float32 on a CPU; it starts afresh, so needs no 03: a stage loading the last one's weights
    whatever either's precision is tests/test_hardware.py's); both also train on EXTERNAL_DIR's 8 HPAv18 images
    (downloaded from a file:// address) and hold none of them out."""
    source = hpav18.write_hpav18(tmp_path / "hpav18", 8, image_size=64, seed=3)
    external_dir = tmp_path / "external"
    address = (source / hpav18.IMAGES_FOLDER).as_uri() + "/"
    external.download(source / hpav18.LABELS_CSV, external_dir, settings=external.Settings(address, 64), progress=False)
    preset = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    preset["notebooks"] = ["02_warmup_finetune", "04_kfold"]  # 02 makes its own split without 01's
    for undeclared in ("MONTAGE_SAMPLES", "STATISTICS_SAMPLES", "EPOCHS"):  # 00's and 01's only
        del preset["parameters"][undeclared]
    policies = {"02_warmup_finetune": "on", "04_kfold": "auto"}
    for stage, setting in policies.items():
        preset["stages"].setdefault(stage, {})["MIXED_PRECISION"] = setting
    (tmp_path / "replicas.yaml").write_text(yaml.safe_dump(preset))
    run_dir = tmp_path / "run"
    result = run_cli(
        "--preset",
        str(tmp_path / "replicas.yaml"),
        "--out",
        str(run_dir),
        "-p",
        f"EXTERNAL_DIR={external_dir}",
        environment_variables={"HPA_CPU_REPLICAS": "2"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = {"on": "mixed_float16", "auto": "float32"}
    external_ids = set(dataset.read_train_labels(external_dir)["Id"])
    for stage, setting in policies.items():
        metrics = json.loads((run_dir / stage / "metrics.json").read_text())
        assert (metrics["replicas"], metrics["strategy"]) == (2, "MirroredStrategy"), stage
        assert metrics["precision_policy"] == expected[setting], stage
        assert metrics["external_images"] == 8, stage
        if stage != "04_kfold":
            assert not external_ids & set(pd.read_csv(run_dir / stage / stages.SPLIT_FILE)["Id"])
        assert "MirroredStrategy, 2 CPU replicas" in (run_dir / f"{stage}.ipynb").read_text()
    assert json.loads((run_dir / "04_kfold" / "fold_1" / "metrics.json").read_text())["replicas"] == 2
    submission = pd.read_csv(run_dir / "04_kfold" / "submission.csv", dtype=str, keep_default_na=False)
    assert len(submission) == 16 and submission["Predicted"].str.fullmatch(r"\d+( \d+)*").all()
    folds = pd.read_csv(run_dir / "04_kfold" / "folds.csv")
    assert not external_ids & set(folds["Id"]) and len(np.load(run_dir / "04_kfold" / "oof.npy")) == len(folds)


# slow: the smoke pipeline's 01 and 04 again (about 30 s), under a time limit already past
def test_a_stage_past_its_time_limit_stops_cleanly_after_one_epoch_and_04_submits_its_finished_fold(tmp_path):
    run_dir = tmp_path / "run"
    arguments = ["--preset", "smoke", "--out", str(run_dir), "--only", "01", "04"]  # 04 starts afresh: needs no 03
    result = run_cli(*arguments, "-p", "TIME_LIMIT_HOURS=0.0001", "-p", "EPOCHS=3", "-p", "FINETUNE_EPOCHS=3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    baseline = json.loads((run_dir / "01_baseline" / "metrics.json").read_text())
    assert baseline["epochs"] == 1 and baseline["stopped_early"].endswith("stopped after epoch 1 of 3")
    assert baseline["time_limit_hours"] == 0.0001 and baseline["projected_seconds"] > 0
    assert "Projected from its first epoch" in (run_dir / "01_baseline.ipynb").read_text()
    kfold = json.loads((run_dir / "04_kfold" / "metrics.json").read_text())
    assert kfold["folds_finished"] == [0] and "stopped after fold 0 of 0, 1" in kfold["stopped_early"]
    assert kfold["images_scored"] == len(pd.read_csv(run_dir / "04_kfold" / "folds.csv").query("fold == 0"))
    submission = pd.read_csv(run_dir / "04_kfold" / "submission.csv", dtype=str, keep_default_na=False)
    assert len(submission) == 16 and submission["Predicted"].str.fullmatch(r"\d+( \d+)*").all()
    assert "01_baseline: done in" in result.stdout and "STOPPED EARLY: time limit 0.0001 h" in result.stdout
    assert "stopped after fold 0 of 0, 1" in (run_dir / "report.html").read_text()

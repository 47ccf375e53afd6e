"""A stage's files and scores: thresholds, metrics, per-class F1, the comparison and report tables, a stage's model."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from hpa_utils import errors, stages
from hpa_utils.pipeline import kfold
from hpa_utils.results import evaluation
from hpa_utils.stages import stage_files, stage_model


def test_thresholds_file_has_28_named_thresholds(tmp_path):
    report = {"best_global_threshold": 0.3, "per_class_thresholds": [0.1 * (i % 9) for i in range(28)]}
    stage_files.save_thresholds(tmp_path, report)
    saved = json.loads((tmp_path / "thresholds.json").read_text())
    assert saved["global"] == 0.3 and len(saved["per_class"]) == 28
    assert list(saved["classes"])[27] == "27 Rods & rings"


def test_evaluate_scores_a_perfect_and_a_prior_prediction():
    rng = np.random.default_rng(0)
    targets = (rng.random((60, 28)) < 0.2).astype(np.float32)
    scores = evaluation.evaluate(targets * 0.9 + 0.05, targets, targets)
    assert scores["f1_at_0.5"] == pytest.approx(1.0) and len(scores["per_class_f1"]) == 28
    assert scores["prior_baseline_f1"] < 0.5


def test_per_class_by_stage_collects_finished_training_stages(tmp_path):
    stage_files.write_metrics(stages.stage_dir(str(tmp_path), "01_baseline"), {"per_class_f1": [0.5] * 28})
    stage_files.write_metrics(stages.stage_dir(str(tmp_path), "03_upscale"), {"per_class_f1": [0.25] * 28})
    stages.stage_dir(str(tmp_path), "02_warmup_finetune")  # started, not finished
    assert stage_files.per_class_by_stage(str(tmp_path)) == {"01_baseline": [0.5] * 28, "03_upscale": [0.25] * 28}


def test_comparison_table_rows_per_finished_stage_with_whole_numbers(tmp_path):
    from hpa_utils.results import comparison

    stage_files.write_metrics(
        stages.stage_dir(str(tmp_path), "01_baseline"),
        {"f1_at_0.5": 0.2, "f1_at_best_global": 0.3, "image_size": 64, "epochs": 10, "seconds": 100},
    )
    stage_files.write_metrics(
        stages.stage_dir(str(tmp_path), "04_kfold"),
        {"f1_at_0.5": 0.3, "f1_at_per_class": 0.45, "test_f1": 0.36, "image_size": 96, "seconds": 160},
    )
    table = comparison.table(str(tmp_path))
    assert list(table["stage"]) == ["01_baseline", "04_kfold"]
    assert table["epochs"].tolist() == ["10", ""] and table["image size"].tolist() == ["64", "96"]
    assert table["test F1 (test images)"].tolist() == ["", "0.360"]
    assert "95% interval" not in table  # no stage has one: the column is left out


def test_model_from_stage_and_start_model_keep_dropout_load_by_name_and_set_input_statistics(tmp_path):
    from hpa_utils import models

    source = models.build_model("small", 32, "rgby", dropout=0.2)
    stage = tmp_path / "02_warmup_finetune"
    stage.mkdir()
    history = pd.DataFrame({"epoch": [0], "loss": [0.5]})
    stage_model.save_stage(
        stage,
        source,
        history,
        scores={"f1_at_0.5": 0.0},
        backbone="small",
        channels="rgby",
        backbone_weights="none",
        image_size=32,
        dropout=0.2,
        freeze_batch_norm=False,
    )

    upscaled = stage_model.model_from_stage(stage, 48)
    assert upscaled.input.shape == (None, 48, 48, 4)
    assert upscaled.get_layer("upscale_adapter").output.shape[1:3] == (2, 2)
    assert upscaled.get_layer("head_dropout_1").rate == 0.2
    np.testing.assert_array_equal(
        upscaled.get_layer("head_dense").kernel.numpy(), source.get_layer("head_dense").kernel.numpy()
    )
    images = np.full((4, 48, 48, 4), 20, np.uint8)
    images[:2] = 60  # held out: must not count
    is_held_out = np.array([True, True, False, False])
    assert (
        kfold.start_model(
            stage,
            models.ModelSpec("small", 48, "rgby", "none", freeze_batch_norm=False),
            images,
            is_held_out,
            scope=tf.distribute.get_strategy().scope,
        )
        .get_layer("head_dropout_2")
        .rate
        == 0.2
    )
    with pytest.raises(errors.InputError, match="trained as small/rgby, but BACKBONE/CHANNELS are resnet50/rgby"):
        kfold.start_model(
            stage,
            models.ModelSpec("resnet50", 48, "rgby", "none", freeze_batch_norm=False),
            images,
            is_held_out,
            scope=tf.distribute.get_strategy().scope,
        )
    fresh = kfold.start_model(
        None,
        models.ModelSpec("small", 48, "rgby", "none", freeze_batch_norm=False),
        images,
        is_held_out,
        scope=tf.distribute.get_strategy().scope,
    )
    np.testing.assert_allclose(fresh.get_layer("input_bn").moving_mean.numpy(), 20 / 255, rtol=1e-6)
    np.testing.assert_allclose(fresh.get_layer("input_bn").moving_variance.numpy(), 0.0, atol=1e-9)


def test_report_table_leaves_missing_values_blank_and_counts_whole(tmp_path):
    from hpa_utils.results import report

    stage_files.write_metrics(
        stages.stage_dir(str(tmp_path), "01_baseline"),
        {"f1_at_0.5": 0.2, "image_size": 64, "epochs": 10, "seconds": 100},
    )
    stage_files.write_metrics(
        stages.stage_dir(str(tmp_path), "04_kfold"),
        {"f1_at_0.5": 0.3, "test_f1": 0.36, "image_size": 96, "seconds": 160},
    )
    page = report.write_report(tmp_path).read_text()
    table = page[page.index("<table") : page.index("</table>")]
    assert "<td>0.200</td>" in table and "<td>10</td>" in table and "<td>0.360</td>" in table
    assert "NaN" not in table and "NA" not in table and "10.0" not in table and "None" not in table

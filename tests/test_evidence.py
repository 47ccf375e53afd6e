"""Scores with their uncertainty: the bootstrap over images, predictions.npz, the stage comparison, the report."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hpa_utils import errors, stages  # noqa: E402
from hpa_utils.dataset import labels  # noqa: E402
from hpa_utils.results import comparison, evaluation, metrics, plots, report  # noqa: E402
from hpa_utils.stages import stage_files  # noqa: E402


def real_targets(rows: int, seed: int = 0) -> np.ndarray:
    """``rows`` label sets drawn from the competition's train.csv: its rare classes are rare here too."""
    sets, counts = labels.train_label_sets()
    every = [label_set for label_set, count in zip(sets, counts) for _ in range(count)]
    chosen = np.random.default_rng(seed).choice(len(every), rows, replace=False)
    return labels.to_multi_hot([every[index] for index in chosen])


def noisy_prediction(targets: np.ndarray, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flips = rng.random(targets.shape) < noise
    return np.where(flips, 1 - targets, targets).astype(np.uint8)


def test_bootstrap_scores_are_macro_f1_of_the_drawn_images():
    """The fast count-weighted path gives what sklearn's macro F1 gives on the very same draws."""
    targets = real_targets(300)
    predicted = noisy_prediction(targets, 0.05, seed=1)
    scores = metrics.bootstrap_macro_f1(targets, [predicted], resamples=5, seed=7)[0]
    draws = np.random.default_rng(7).integers(0, len(targets), size=(5, len(targets)))
    expected = [metrics.macro_f1(targets[rows], predicted[rows]) for rows in draws]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_interval_is_seeded_contains_the_score_and_narrows_with_more_images():
    targets = real_targets(2000)
    predicted = noisy_prediction(targets, 0.03, seed=2)
    small = metrics.f1_interval(targets[:200], predicted[:200])
    assert small == metrics.f1_interval(targets[:200], predicted[:200])  # seeded: the same every time
    for rows in (200, 2000):
        low, high = metrics.f1_interval(targets[:rows], predicted[:rows])
        assert low <= metrics.macro_f1(targets[:rows], predicted[:rows]) <= high
    large = metrics.f1_interval(targets, predicted)
    assert large[1] - large[0] < (small[1] - small[0]) / 2


def test_paired_difference_is_zero_for_the_same_prediction_and_sees_a_better_one():
    targets = real_targets(400)
    worse, better = noisy_prediction(targets, 0.08, seed=3), noisy_prediction(targets, 0.01, seed=4)
    same = metrics.paired_difference(targets, worse, worse)
    assert same == {"difference": 0.0, "ci95": [0.0, 0.0], "share_better": 0.0}
    gain = metrics.paired_difference(targets, better, worse)
    assert gain["difference"] == pytest.approx(metrics.macro_f1(targets, better) - metrics.macro_f1(targets, worse))
    assert 0 < gain["ci95"][0] <= gain["difference"] <= gain["ci95"][1] and gain["share_better"] > 0.95
    unpaired = metrics.f1_interval(targets, better)[1] - metrics.f1_interval(targets, better)[0]
    assert gain["ci95"][1] - gain["ci95"][0] < unpaired  # pairing removes the images' shared difficulty


def test_bootstrap_refuses_what_it_cannot_score():
    targets = real_targets(20)
    with pytest.raises(errors.InputError, match="multi-hot"):
        metrics.bootstrap_macro_f1(targets, [np.full(targets.shape, 0.3)])
    with pytest.raises(errors.InputError, match="empty"):
        metrics.bootstrap_macro_f1(targets[:0], [targets[:0]])
    with pytest.raises(errors.InputError, match="resamples"):
        metrics.f1_interval(targets, targets, resamples=0)


def test_evaluate_gives_the_interval_around_the_best_threshold_score():
    targets = real_targets(200).astype(np.float32)
    probabilities = np.clip(0.4 * targets + 0.6 * np.random.default_rng(5).random(targets.shape), 0, 1)
    scores = evaluation.evaluate(probabilities, targets, targets)
    low, high = scores["f1_at_best_global_ci95"]
    assert low <= scores["f1_at_best_global"] <= high and scores["images_scored"] == 200


def write_stage(run_dir, stage, ids, targets, probabilities, **scores):
    folder = stages.stage_dir(str(run_dir), stage)
    threshold = 0.5
    predicted = metrics.apply_thresholds(probabilities, threshold, at_least_one=False)
    stage_files.write_predictions(folder, ids=ids, targets=targets, probabilities=probabilities, threshold=threshold)
    stage_files.write_metrics(
        folder,
        {
            "f1_at_best_global": metrics.macro_f1(targets, predicted),
            "f1_at_best_global_ci95": metrics.f1_interval(targets, predicted),
            "images_scored": len(ids),
            "prior_baseline_f1": 0.05,
            "per_class_f1": [0.5] * 28,
            **scores,
        },
    )


def test_predictions_round_trip_and_refuse_rows_that_do_not_match(tmp_path):
    targets = real_targets(10)
    ids = [f"image-{index}" for index in range(10)]
    stage_files.write_predictions(tmp_path, ids=ids, targets=targets, probabilities=targets * 0.8, threshold=0.4)
    saved = stage_files.read_predictions(tmp_path)
    assert list(saved["ids"]) == ids and saved["threshold"] == 0.4
    np.testing.assert_array_equal(saved["targets"], targets)
    assert stage_files.read_predictions(tmp_path / "elsewhere") is None
    with pytest.raises(errors.InputError, match="10 Ids, 9 target rows"):
        stage_files.write_predictions(tmp_path, ids=ids, targets=targets[:9], probabilities=targets, threshold=0.4)


def test_comparison_pairs_stages_on_the_same_images_and_says_when_they_are_not(tmp_path):
    targets = real_targets(300)
    ids = [f"v{index}" for index in range(300)]
    write_stage(tmp_path, "01_baseline", ids, targets, noisy_prediction(targets, 0.08, 1) * 0.9)
    write_stage(tmp_path, "02_warmup_finetune", ids, targets, noisy_prediction(targets, 0.02, 2) * 0.9)
    everything = real_targets(900, seed=1)
    write_stage(tmp_path, "04_kfold", [f"t{i}" for i in range(900)], everything, everything * 0.9, test_f1=0.4)
    rows = comparison.rows(str(tmp_path))
    assert [row["stage"] for row in rows] == ["01_baseline", "02_warmup_finetune", "04_kfold"]
    assert "before" not in rows[0] and rows[1]["difference"]["ci95"][0] > 0 and rows[2]["difference"] is None
    table = comparison.table(str(tmp_path))
    assert table["scored on (images)"].tolist() == ["validation (300)", "validation (300)", "out of fold (900)"]
    assert table["vs stage before [95%]"].iloc[1].startswith("+")
    assert table["vs stage before [95%]"].iloc[2] == "not paired: out of fold images"
    markdown = comparison.markdown(table)
    assert markdown.splitlines()[0].startswith("| stage | scored on (images) |") and len(markdown.splitlines()) == 5
    line = comparison.headline(stage_files.read_metrics(tmp_path / "02_warmup_finetune"), "02_warmup_finetune")
    assert line.startswith("validation F1 ") and "prior 0.050" in line


def test_report_shows_intervals_image_sets_and_a_legend_beside_the_bars(tmp_path):
    targets = real_targets(120)
    ids = [f"v{index}" for index in range(120)]
    write_stage(tmp_path, "01_baseline", ids, targets, targets * 0.9)
    write_stage(tmp_path, "02_warmup_finetune", ids, targets, noisy_prediction(targets, 0.05, 3) * 0.9)
    (tmp_path / "02_warmup_finetune" / "history.csv").write_text(
        "epoch,loss,val_loss,f1,val_f1\n0,1,1,0,0\n1,.5,.6,.2,.1\n"
    )
    page = report.write_report(tmp_path).read_text()
    assert "validation (120)" in page and "95% interval" in page and "paired bootstrap" in page
    assert 'alt="training curves 02_warmup_finetune"' in page and 'alt="per-class F1"' in page
    figure = plots.per_class_f1({"01_baseline": [0.9] * 28, "02_warmup_finetune": [1.0] * 28})
    figure.canvas.draw()
    legend = figure.legends[0].get_window_extent()
    axes = figure.axes[0].get_window_extent()
    assert legend.x0 >= axes.x1  # beside the axes: it covers no bar, even bars at F1 1.0

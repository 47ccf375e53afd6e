"""The time budget: the limit a stage is held to, the projection from its first steps, and the clean stop."""

import time

import numpy as np
import pytest

from hpa_utils import errors, models
from hpa_utils.system import environment
from hpa_utils.training import budget, fitting


def test_the_limit_is_kaggles_session_less_a_margin_on_kaggle_and_none_elsewhere(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    assert budget.limit_hours(budget.AUTO) == 0.0
    assert budget.limit_hours(0) == 0.0 and budget.limit_hours(2.5) == 2.5
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    assert budget.limit_hours(budget.AUTO) == environment.KAGGLE_SESSION_HOURS - environment.KAGGLE_MARGIN_HOURS == 11.5
    with pytest.raises(errors.InputError, match="TIME_LIMIT_HOURS=-2"):
        budget.limit_hours(-2)


def test_a_budget_without_a_limit_allows_anything_and_records_no_stop():
    clock = budget.Budget(0)
    assert clock.allows(1e9) and clock.limit_text() == "no time limit"
    assert clock.record()["stopped_early"] == "" and clock.record()["time_limit_hours"] == 0.0


def test_each_yields_while_the_next_item_fits_and_says_where_it_stopped():
    clock = budget.Budget(hours=0.6 / 3600)  # 0.6 s
    done = []
    for fold in clock.each([0, 1, 2, 3], "fold"):
        time.sleep(0.25)
        done.append(fold)
    assert done == [0, 1]  # after 0.5 s another 0.25 s would end past 0.6 s
    assert clock.stopped_early.startswith("time limit 0.000167 h: the next fold (about 0 s) would end past it")
    assert clock.stopped_early.endswith("stopped after fold 0, 1 of 0, 1, 2, 3")
    unlimited = budget.Budget(0)
    assert list(unlimited.each([0, 1, 2], "fold")) == [0, 1, 2] and unlimited.stopped_early == ""


def train(tmp_path, clock, *, warmup_epochs, finetune_epochs, images=64):
    """The small backbone at 16 px on random images, batches of 8, under ``clock``; its history."""
    rng = np.random.default_rng(images)
    pixels, targets = rng.integers(0, 256, (images, 16, 16, 3), dtype=np.uint8), np.zeros((images, 28), "float32")
    return fitting.warmup_then_finetune(
        models.build_model("small", 16, "rgb", "none"),
        (pixels, targets),
        (pixels[:8], targets[:8]),
        fitting.Schedule(warmup_epochs, finetune_epochs, learning_rate=1e-3, finetune_learning_rate=1e-4, patience=10),
        freeze_batch_norm=False,
        stage_dir=tmp_path,
        batch_size=8,
        time_budget=clock,
    )


def test_training_stops_at_an_epoch_boundary_before_the_limit_and_keeps_one_epoch(tmp_path, capsys):
    clock = budget.Budget(hours=1e-9)  # already past: still one epoch trains
    history = train(tmp_path, clock, warmup_epochs=0, finetune_epochs=5)
    assert len(history) == 1
    assert "stopped after epoch 1 of 5" in clock.stopped_early
    printed = capsys.readouterr().out
    assert "Projected from its first steps, training only: " in printed  # 8 steps: 2 traced, 5 timed
    assert "Projected from its first epoch, validation included: " in printed and "(5 epochs of about" in printed
    assert clock.record()["projected_seconds"] >= 0 and "limit 1e-09 h" in printed


def test_a_stop_during_warm_up_skips_the_fine_tuning(tmp_path):
    clock = budget.Budget(hours=1e-9)
    history = train(tmp_path, clock, warmup_epochs=2, finetune_epochs=3, images=16)
    assert history["phase"].tolist() == ["warmup"] and "stopped after epoch 1 of 5" in clock.stopped_early


def test_without_a_limit_every_epoch_of_both_phases_trains(tmp_path):
    clock = budget.Budget(0)
    history = train(tmp_path, clock, warmup_epochs=1, finetune_epochs=2, images=16)
    assert history["phase"].tolist() == ["warmup", "finetune", "finetune"] and clock.stopped_early == ""
    assert clock.projected_seconds is not None  # 2 steps an epoch: projected from the first epoch

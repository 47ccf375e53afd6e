"""Tests of hpa_utils.training: compiling, callbacks, and the warm-up then fine-tune recipe on tiny models."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from hpa_utils import models, training


def tiny_data(count=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    targets = (rng.random((count, 28)) < 0.3).astype("float32")
    return images, targets


def tiny_dense_model():
    """A real but very small 28-output model, for tests that are about the training loop, not the backbone."""
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(28, activation="sigmoid")(inputs))


def test_compile_with_focal_loss_and_macro_f1():
    model = models.build_model("resnet50", 32)
    training.compile_model(model, learning_rate=1e-3, loss="focal", focal_gamma=3.0)
    assert isinstance(model.loss, keras.losses.BinaryFocalCrossentropy)
    assert model.loss.gamma == 3.0
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    images, targets = tiny_data()
    result = model.evaluate(images, targets, batch_size=2, return_dict=True, verbose=0)
    predictions = model.predict(images, verbose=0)
    expected_loss = keras.losses.BinaryFocalCrossentropy(gamma=3.0)(targets, predictions)
    assert result["loss"] == pytest.approx(float(expected_loss), rel=1e-4)
    # one macro F1 over the whole set (4 batches of 2), not an average of batch scores
    expected_f1 = f1_score(targets, predictions > 0.5, average="macro", zero_division=0)
    assert result["f1"] == pytest.approx(expected_f1, abs=1e-4)


def test_compile_rejects_unknown_loss_and_bad_learning_rate():
    model = tiny_dense_model()
    with pytest.raises(ValueError, match="loss='mse' is not supported"):
        training.compile_model(model, 1e-3, loss="mse")
    with pytest.raises(ValueError, match="learning_rate=0 must be positive"):
        training.compile_model(model, 0)


def test_make_callbacks(tmp_path):
    callbacks = training.make_callbacks(tmp_path / "stage")
    kinds = [type(callback) for callback in callbacks]
    assert kinds == [
        keras.callbacks.ModelCheckpoint,
        keras.callbacks.ReduceLROnPlateau,
        keras.callbacks.EarlyStopping,
        keras.callbacks.CSVLogger,
        keras.callbacks.TerminateOnNaN,
        training.StopOnDivergence,
    ]
    checkpoint, reduce_learning_rate, early_stopping, logger = callbacks[:4]
    assert checkpoint.filepath == str(tmp_path / "stage" / "best.weights.h5")
    assert checkpoint.monitor == "val_f1" and checkpoint.best == 0.0  # saved once the F1 rises above 0
    assert early_stopping.monitor == reduce_learning_rate.monitor == "val_loss"
    stale = tmp_path / "stage" / "best.weights.h5"
    stale.write_text("left by an interrupted run")
    training.make_callbacks(tmp_path / "stage")
    assert not stale.exists()
    assert logger.append
    with pytest.raises(ValueError, match="must end in .weights.h5"):
        training.make_callbacks(tmp_path, checkpoint_path=tmp_path / "best.h5")


@pytest.mark.filterwarnings("ignore:.*val_f1.*:UserWarning")  # no validation data here
def test_divergence_stops_with_a_clear_error(tmp_path):
    model = training.compile_model(tiny_dense_model(), 1e-3)
    images = np.full((8, 4), np.nan, dtype="float32")
    targets = np.zeros((8, 28), dtype="float32")
    with pytest.raises(
        training.TrainingDivergedError, match="loss became nan at epoch 1, batch 0.*lower learning rate"
    ):
        training.fit(model, (images, targets), epochs=2, stage_dir=tmp_path, batch_size=4, verbose=0)
    assert (tmp_path / "history.csv").exists()


def test_fit_needs_a_stage_dir_or_callbacks():
    model = training.compile_model(tiny_dense_model(), 1e-3)
    with pytest.raises(ValueError, match="fit needs stage_dir"):
        training.fit(model, (np.zeros((2, 4)), np.zeros((2, 28))))


def test_set_seed_makes_initialisation_repeatable():
    training.set_seed(7)
    first = keras.layers.Dense(3)
    first.build((None, 2))
    training.set_seed(7)
    second = keras.layers.Dense(3)
    second.build((None, 2))
    np.testing.assert_array_equal(first.kernel.numpy(), second.kernel.numpy())


class WeightSnapshots(keras.callbacks.Callback):
    """Copies of every layer's weights at the start and end of each fit (each phase)."""

    def __init__(self):
        super().__init__()
        self.snapshots = []

    def _snapshot(self):
        return {layer.name: [w.copy() for w in layer.get_weights()] for layer in self.model.layers}

    def on_train_begin(self, logs=None):
        self.snapshots.append(self._snapshot())

    def on_train_end(self, logs=None):
        self.snapshots.append(self._snapshot())


def changed(before, after, name):
    return [not np.array_equal(a, b) for a, b in zip(before[name], after[name])]


@pytest.mark.slow  # trains a ResNet50 for two epochs, weights compared after each phase
def test_warmup_freezes_the_backbone_and_finetune_trains_it(tmp_path):
    training.set_seed(0)
    model = models.build_model("resnet50", 32, freeze_batch_norm=True)  # as with pretrained weights
    images, targets = tiny_data()
    snapshots = WeightSnapshots()
    callbacks = training.make_callbacks(tmp_path) + [snapshots]
    history = training.warmup_then_finetune(
        model,
        (images, targets),
        (images, targets),
        warmup_epochs=1,
        finetune_epochs=1,
        learning_rate=1e-3,
        finetune_learning_rate=1e-4,
        stage_dir=tmp_path,
        callbacks=callbacks,
        batch_size=4,
        verbose=0,
    )
    warmup_start, warmup_end, finetune_start, finetune_end = snapshots.snapshots

    assert not any(changed(warmup_start, warmup_end, "backbone"))  # every backbone weight unchanged
    for name in ("input_bn", "head_conv", "head_dense", "predictions"):
        assert all(changed(warmup_start, warmup_end, name)), name

    backbone = model.get_layer("backbone")
    variables = backbone.weights
    moved = changed(finetune_start, finetune_end, "backbone")
    conv_moved = [m for m, v in zip(moved, variables) if v.path.endswith("conv/kernel")]
    statistics_moved = [m for m, v in zip(moved, variables) if "moving_" in v.path]
    assert sum(conv_moved) == len(conv_moved) > 50  # fine-tuning trains the backbone
    assert not any(statistics_moved)  # its BatchNormalization stays in inference mode
    assert all(changed(finetune_start, finetune_end, "input_bn"))  # input_bn trains normally

    assert list(history["epoch"]) == [0, 1]
    assert list(history["phase"]) == ["warmup", "finetune"]
    assert {"loss", "f1", "val_loss", "val_f1"} <= set(history.columns)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)
    logged = pd.read_csv(tmp_path / "history.csv")
    assert list(logged["epoch"]) == [0, 1]
    assert (tmp_path / "best.weights.h5").exists()

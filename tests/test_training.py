"""Tests of hpa_utils.training.fitting: compiling, callbacks, and the warm-up then fine-tune recipe on tiny models."""

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from hpa_utils import errors, models
from hpa_utils.results import evaluation
from hpa_utils.training import budget, fitting


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
    model = models.build_model(backbone="small", image_size=32)
    fitting.compile_model(model, learning_rate=1e-3, loss="focal", focal_gamma=3.0)
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


class CountingModel(keras.Model):
    """A functional model that counts how often Keras traces its training step."""

    traces = 0

    def train_step(self, data):
        CountingModel.traces += 1
        return super().train_step(data)


def test_compile_model_builds_the_training_state_so_the_step_is_traced_once_and_trains_the_same():
    images, targets = tiny_data(count=16)
    trained = []
    for prebuilt in (True, False):
        keras.utils.set_random_seed(0)
        plain = models.build_model(backbone="small", image_size=32, dropout=0.1)
        model = CountingModel(plain.inputs, plain.outputs)
        CountingModel.traces = 0
        if prebuilt:
            fitting.compile_model(model, learning_rate=1e-3)
        else:  # what compile_model does, without building the optimizer's and the metrics' variables first
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                loss=keras.losses.BinaryCrossentropy(),
                metrics=[keras.metrics.F1Score(average="macro", threshold=0.5), keras.metrics.BinaryAccuracy()],
            )
        model.fit(images, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        trained.append((CountingModel.traces, model.get_weights()))
    (once, built_first), (twice, built_in_the_step) = trained
    assert (once, twice) == (1, 2), "variables created inside the first step make TensorFlow trace it again"
    assert all(np.array_equal(a, b) for a, b in zip(built_first, built_in_the_step, strict=True))


def test_compile_rejects_unknown_loss_and_bad_learning_rate():
    model = tiny_dense_model()
    with pytest.raises(errors.InputError, match="loss='mse' is not supported"):
        fitting.compile_model(model, 1e-3, loss="mse")
    with pytest.raises(errors.InputError, match="learning_rate=0 must be positive"):
        fitting.compile_model(model, 0)


def test_make_callbacks(tmp_path):
    callbacks = fitting.make_callbacks(tmp_path / "stage")
    kinds = [type(callback) for callback in callbacks]
    assert kinds == [
        keras.callbacks.ModelCheckpoint,
        keras.callbacks.ReduceLROnPlateau,
        keras.callbacks.EarlyStopping,
        keras.callbacks.TerminateOnNaN,
        fitting.StopOnDivergence,
    ]
    checkpoint, reduce_learning_rate, early_stopping = callbacks[:3]
    assert checkpoint.filepath == str(tmp_path / "stage" / fitting.CHECKPOINT_FILE)
    assert checkpoint.monitor == "val_f1" and checkpoint.best is None  # the first epoch is saved whatever its F1
    assert early_stopping.monitor == reduce_learning_rate.monitor == "val_loss"
    stale = tmp_path / "stage" / fitting.CHECKPOINT_FILE
    stale.write_text("left by an interrupted run")
    timed = fitting.make_callbacks(tmp_path / "stage", time_budget=budget.Budget(1.0), epochs=4, runs=2)
    assert not stale.exists()
    assert isinstance(timed[-2], budget.EpochBudget) and (timed[-2].epochs, timed[-2].runs) == (4, 2)
    assert isinstance(timed[-1], fitting.StopOnDivergence)  # last: it raises after the others' clean-up
    with pytest.raises(errors.InputError, match="needs epochs"):
        fitting.make_callbacks(tmp_path, time_budget=budget.Budget(1.0))


@pytest.mark.filterwarnings("ignore:.*val_.*:UserWarning")  # no validation data here
def test_divergence_stops_with_a_clear_error(tmp_path):
    model = fitting.compile_model(tiny_dense_model(), 1e-3)
    images = np.full((8, 4), np.nan, dtype="float32")
    targets = np.zeros((8, 28), dtype="float32")
    with pytest.raises(fitting.TrainingDivergedError, match="loss became nan at epoch 1, batch 0.*lower learning rate"):
        fitting.fit(model, (images, targets), epochs=2, callbacks=fitting.make_callbacks(tmp_path), batch_size=4)


def test_a_phase_with_no_epochs_left_trains_nothing(tmp_path):
    model = fitting.compile_model(tiny_dense_model(), 1e-3)
    data = (np.ones((8, 4), "float32"), np.zeros((8, 28), "float32"))
    before = [weight.copy() for weight in model.get_weights()]
    callbacks = fitting.make_callbacks(tmp_path)
    assert fitting.fit(model, data, epochs=0, callbacks=callbacks).empty  # WARMUP_EPOCHS = 0
    assert fitting.fit(model, data, epochs=3, initial_epoch=3, callbacks=callbacks).empty
    stopped = budget.Budget(1.0)
    stopped.stopped_early = "time limit: stopped after epoch 1 of 2"  # as the warm-up's EpochBudget leaves it
    timed = fitting.make_callbacks(tmp_path, time_budget=stopped, epochs=2)
    assert fitting.fit(model, data, epochs=2, initial_epoch=1, callbacks=timed).empty  # the fine-tune is skipped
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_set_seed_makes_initialisation_repeatable():
    fitting.set_seed(7)
    first = keras.layers.Dense(3)
    first.build((None, 2))
    fitting.set_seed(7)
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


def changed_in(before, after, layers):
    return [moved for layer in layers for moved in changed(before, after, layer.name)]


def test_warmup_freezes_the_backbone_and_finetune_trains_it(tmp_path):
    """02's recipe as its cells spell it out, on the small backbone (build_model freezes every backbone alike)."""
    fitting.set_seed(0)
    model = models.build_model(backbone="small", image_size=32, freeze_batch_norm=True)  # as with pretrained weights
    images, targets = tiny_data()
    snapshots = WeightSnapshots()
    callbacks = fitting.make_callbacks(tmp_path) + [snapshots]
    options = dict(callbacks=callbacks, batch_size=4, phase="finetune")
    models.set_backbone_trainable(model, False, freeze_batch_norm=True)
    fitting.compile_model(model, 1e-3)
    warmup = fitting.fit(model, (images, targets), (images, targets), epochs=1, **options | {"phase": "warmup"})
    models.set_backbone_trainable(model, True, freeze_batch_norm=True)
    fitting.compile_model(model, 1e-4)
    finetune = fitting.fit(model, (images, targets), (images, targets), epochs=2, initial_epoch=1, **options)
    history = fitting.restore_best_epoch(model, callbacks, warmup, finetune)
    warmup_start, warmup_end, finetune_start, finetune_end = snapshots.snapshots

    backbone = models.backbone_layers(model)
    assert not any(changed_in(warmup_start, warmup_end, backbone))  # every backbone weight unchanged
    for name in ("input_bn", "head_conv", "head_dense", "predictions"):
        assert all(changed(warmup_start, warmup_end, name)), name

    variables = [variable for layer in backbone for variable in layer.weights]
    moved = changed_in(finetune_start, finetune_end, backbone)
    convolutions = [layer for layer in backbone if isinstance(layer, keras.layers.Conv2D)]
    kernels = {id(layer.kernel) for layer in convolutions}
    conv_moved = [m for m, v in zip(moved, variables) if id(v) in kernels]
    statistics_moved = [m for m, v in zip(moved, variables) if "moving_" in v.path]
    assert sum(conv_moved) == len(conv_moved) == len(convolutions) > 0  # fine-tuning trains every convolution
    assert not any(statistics_moved)  # its BatchNormalization stays in inference mode
    assert all(changed(finetune_start, finetune_end, "input_bn"))  # input_bn trains normally

    assert list(history["epoch"]) == [0, 1]
    assert list(history["phase"]) == ["warmup", "finetune"]
    assert {"loss", "f1", "val_loss", "val_f1"} <= set(history.columns)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)


def test_warmup_then_finetune_is_the_same_recipe_for_03_and_04(tmp_path):
    fitting.set_seed(0)
    model = models.build_model(backbone="small", image_size=32)  # from scratch: its BatchNorm trains
    images, targets = tiny_data()
    history = fitting.warmup_then_finetune(
        model,
        (images, targets),
        (images, targets),
        fitting.Schedule(warmup_epochs=1, finetune_epochs=2, learning_rate=1e-3, finetune_learning_rate=1e-4),
        freeze_batch_norm=False,
        stage_dir=tmp_path,
        batch_size=4,
    )
    assert list(history["epoch"]) == [0, 1, 2] and list(history["phase"]) == ["warmup", "finetune", "finetune"]
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)
    assert all(layer.trainable for layer in models.backbone_layers(model))  # BatchNorm included
    with pytest.raises(errors.InputError, match="warmup_epochs=0, finetune_epochs=0: both must be >= 0 and not both 0"):
        fitting.Schedule(warmup_epochs=0, finetune_epochs=0, learning_rate=1e-3, finetune_learning_rate=1e-4)


def quadrant_data(count, seed, size=32):
    """Images whose labels are visible: class k (k < 4) is on where quadrant k is bright; classes 4-27 never are."""
    rng = np.random.default_rng(seed)
    targets = np.zeros((count, 28), "float32")
    targets[:, :4] = rng.random((count, 4)) < 0.4
    images = rng.integers(0, 40, (count, size, size, 3), dtype=np.uint8)
    half = size // 2
    for k, (row, column) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        images[targets[:, k] == 1, row : row + half, column : column + half, :] += 150
    return images, targets


def test_a_trained_model_beats_the_prior_on_held_out_images(tmp_path):
    """What the smoke run is too small to show (1 epoch at 32 px scores about the prior): the stage's training and
    evaluation, on images whose labels can be learned, beat predicting the class frequencies, interval and all."""
    fitting.set_seed(0)
    (images, targets), (held_out, held_out_targets) = quadrant_data(192, seed=1), quadrant_data(96, seed=2)
    model = models.build_model("small", 32, "rgb", "none", dropout=0.1)
    models.set_input_statistics(model, images)
    callbacks = fitting.make_callbacks(tmp_path)
    fitting.compile_model(model, 1e-3)
    trained = fitting.fit(
        model, (images, targets), (held_out, held_out_targets), epochs=8, callbacks=callbacks, batch_size=16
    )
    fitting.restore_best_epoch(model, callbacks, trained, verbose=0)
    scores = evaluation.evaluate(model.predict(held_out, verbose=0), held_out_targets, targets)
    low, _ = scores["f1_at_best_global_ci95"]
    assert low > scores["prior_baseline_f1"], scores

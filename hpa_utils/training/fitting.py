"""Training: seeding, compiling, callbacks, and the warm-up then fine-tune recipe (devices: ``hardware``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from hpa_utils import errors, models
from hpa_utils.system import hardware
from hpa_utils.training import budget

LOSSES = ("bce", "focal")
WARMUP, FINETUNE = "warmup", "finetune"
CHECKPOINT_FILE = "best.weights.h5"  # the best epoch so far (Keras 3 weights format), inside the stage folder


class TrainingDivergedError(errors.StoppedError):
    """The training loss became NaN or infinite."""


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and the backend (keras.utils.set_random_seed).

    deterministic=True also enables TensorFlow op determinism: reproducible to the bit, slower,
    and it cannot be switched off again in the same process.
    """
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_model(
    model: keras.Model, learning_rate: float, loss: str = "bce", *, focal_gamma: float = 2.0
) -> keras.Model:
    """Compile with Adam, BCE or focal loss, and epoch-level macro F1 at threshold 0.5 ("f1").

    loss: "bce" (keras.losses.BinaryCrossentropy) or "focal" (keras.losses.BinaryFocalCrossentropy
    with gamma=focal_gamma). Targets must be float (N, 28) multi-hot arrays (F1Score needs them).
    Call again after changing what is trainable. Compiles in the distribution strategy the model was built in;
    under a mixed_float16 policy Keras wraps the optimizer in a LossScaleOptimizer (dynamic loss scaling).
    Raises ValueError for an unknown loss.
    """
    if not learning_rate > 0:
        raise errors.InputError(f"learning_rate={learning_rate!r} must be positive")
    with hardware.scope_of(model):  # the strategy the model was built in (TensorFlow): its optimizer's too
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=loss_function(loss, focal_gamma=focal_gamma),
            metrics=[
                keras.metrics.F1Score(average="macro", threshold=0.5, name="f1"),
                keras.metrics.BinaryAccuracy(name="binary_accuracy"),
            ],
        )
        _build_training_state(model)
    return model


def loss_function(loss: str = "bce", *, focal_gamma: float = 2.0) -> keras.losses.Loss:
    """ "bce": keras.losses.BinaryCrossentropy; "focal": keras.losses.BinaryFocalCrossentropy (``focal_gamma``)."""
    if loss == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=focal_gamma, name="focal")
    raise errors.InputError(f"loss={loss!r} is not supported; choose one of {LOSSES}")


def _build_training_state(model: keras.Model) -> None:
    """Create the optimizer's and the metrics' variables now. Created inside the first traced training step
    instead, they make TensorFlow trace that step twice: for EfficientNet-Lite0 on a CPU about 8 s a compile, and
    the same numbers (a test checks)."""
    model.optimizer.build(model.trainable_variables)
    rows = keras.ops.zeros((1, *model.output_shape[1:]), dtype="float32")
    model.compute_metrics(None, rows, rows, None)
    model.reset_metrics()


class StopOnDivergence(keras.callbacks.Callback):
    """Stop when the loss becomes NaN or infinite, then raise TrainingDivergedError after clean-up.

    The error is raised in ``on_train_end``, so list this callback last: the CSV log is closed
    before the notebook stops with the message.
    """

    def __init__(self):
        super().__init__()
        self.problem = None
        self.epoch = 0

    def on_train_begin(self, logs=None):
        self.problem = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.problem is None:
            self.problem = f"the training loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch}"
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.problem is not None:
            learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            raise TrainingDivergedError(
                f"training diverged: {self.problem} (learning rate {learning_rate:g}). "
                "Try a lower learning rate, and check the inputs for NaN or all-black images."
            )


BEST_BY = "val_f1"  # the checkpoint keeps the best epoch by validation macro F1 at 0.5
STOP_BY = "val_loss"  # learning-rate cuts and early stopping follow the validation loss
REDUCE_LEARNING_RATE = {"factor": 0.5, "patience": 2, "min_lr": 1e-6}  # ReduceLROnPlateau's settings


def make_callbacks(
    stage_dir, *, patience: int = 5, time_budget=None, epochs: int | None = None, runs: int = 1
) -> list[keras.callbacks.Callback]:
    """The callbacks every stage uses, shared by both phases of a warm-up (pass the same list to each ``fit``).

    ModelCheckpoint of the best weights by BEST_BY (validation macro F1) in stage_dir/best.weights.h5
    (Keras 3 format; ``restore_best_epoch`` loads it once the score has risen above 0: the first epoch is saved
    whatever its score, so that a stage stopped by a fault keeps what it finished);
    ReduceLROnPlateau and EarlyStopping (after ``patience`` epochs) on STOP_BY (validation loss: it moves every
    epoch, while the F1 at 0.5 of a young model sits at 0 for several epochs and would stop training or cut the
    learning rate before anything was learned); TerminateOnNaN; with a ``time_budget`` (``budget.Budget``) an
    ``budget.EpochBudget`` over ``epochs`` epochs (all phases) times ``runs`` (04's folds), which stops at an
    epoch boundary before the time limit; last, StopOnDivergence (raises TrainingDivergedError when the loss
    became NaN). A checkpoint left by an earlier, interrupted run is removed. The epochs' history is what
    ``fit`` returns (``stage_model.save_stage`` writes it).
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = stage_dir / CHECKPOINT_FILE
    checkpoint_path.unlink(missing_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            checkpoint_path, monitor=BEST_BY, mode="max", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.ReduceLROnPlateau(monitor=STOP_BY, mode="min", verbose=1, **REDUCE_LEARNING_RATE),
        keras.callbacks.EarlyStopping(monitor=STOP_BY, mode="min", patience=patience, verbose=1),
        keras.callbacks.TerminateOnNaN(),
    ]
    if time_budget is not None:
        if not epochs:
            raise errors.InputError("make_callbacks with a time_budget needs epochs (all phases' epochs)")
        callbacks.append(budget.EpochBudget(time_budget, epochs, runs=runs))
    return [*callbacks, StopOnDivergence()]


def _find(callbacks, kind):
    return next((callback for callback in callbacks if isinstance(callback, kind)), None)


def fit(
    model: keras.Model,
    train_data,
    validation_data=None,
    *,
    epochs: int,
    callbacks,
    initial_epoch: int = 0,
    phase: str = "train",
    batch_size: int | None = None,
) -> pd.DataFrame:
    """One ``model.fit`` of a compiled model; the history as a DataFrame with "epoch" and "phase".

    epochs is the index to stop before (as in Keras), so a later phase continues the numbering with
    initial_epoch ("epoch" holds Keras' 0-based index). Nothing trains (an empty history) when
    ``epochs <= initial_epoch`` or when an earlier phase stopped for the time limit (``callbacks``' EpochBudget).
    train_data is a tf.data.Dataset of (images, targets) batches or an (images, targets) tuple of arrays
    (then batch_size applies). Keras prints one line per epoch (verbose=2), which reads well in papermill output.
    """
    epoch_budget = _find(callbacks, budget.EpochBudget)
    if epochs <= initial_epoch or (epoch_budget is not None and epoch_budget.budget.stopped_early):
        return pd.DataFrame({"epoch": pd.Series(dtype=int), "phase": pd.Series(dtype=str)})
    targets = None
    if isinstance(train_data, tuple):  # (images, targets) arrays rather than a tf.data.Dataset
        train_data, targets = train_data
    if not model.optimizer.built:  # compiled in a notebook's own lines: its training state made once, here
        with hardware.scope_of(model):
            _build_training_state(model)
    try:
        history = model.fit(
            train_data,
            targets,
            batch_size=batch_size,
            validation_data=validation_data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=list(callbacks),
            verbose=2,
            shuffle=targets is not None,  # arrays: Keras shuffles them; a tf.data pipeline shuffles itself
        )
    except Exception as error:  # a device out of memory gets a message that says what to try
        if not hardware.is_out_of_memory(error):
            raise
        raise _out_of_memory(model, train_data, targets, batch_size, callbacks) from error
    frame = pd.DataFrame({key: [float(v) for v in values] for key, values in history.history.items()})
    frame.insert(0, "phase", phase)
    frame.insert(0, "epoch", list(history.epoch))
    return frame


def _out_of_memory(model, train_data, targets, batch_size, callbacks) -> hardware.AcceleratorMemoryError:
    """``hardware.out_of_memory`` for a training run: its image size, its batch (the first one's, for a dataset), its
    replicas, and where its best epoch so far is kept."""
    if targets is None:  # a tf.data.Dataset of (images, targets) batches
        batch_size = int(next(iter(train_data))[0].shape[0])
    checkpoint = _find(callbacks, keras.callbacks.ModelCheckpoint)
    kept = "; no epoch had finished, so there is no checkpoint to keep"
    if checkpoint is not None and Path(checkpoint.filepath).is_file():
        kept = f"; the best epoch so far is kept in {checkpoint.filepath}"
    return hardware.out_of_memory(
        "training",
        image_size=int(model.input_shape[1]),
        batch_size=int(batch_size or 32),
        replicas=hardware.devices_of(model),
        more=", with the learning rates scaled down alike" + kept,
    )


def restore_best_epoch(model: keras.Model, callbacks, *histories: pd.DataFrame, verbose: int = 1) -> pd.DataFrame:
    """Load the checkpoint's weights (the best epoch of every phase by validation macro F1; the last epoch's
    weights stay when the F1 never rose above 0) and return the phases' histories as one DataFrame."""
    checkpoint = _find(callbacks, keras.callbacks.ModelCheckpoint)
    if checkpoint is not None and Path(checkpoint.filepath).is_file() and (checkpoint.best or 0) > 0:
        models.load_weights(model, checkpoint.filepath)
        if verbose:
            print(f"Restored the weights of the best epoch ({checkpoint.monitor}={checkpoint.best:.4f}).")
    return pd.concat([history for history in histories if len(history)], ignore_index=True)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A warm-up then fine-tune schedule: the epochs of each phase, their learning rates, the loss and the early
    stopping's patience. warmup_epochs=0 skips the warm-up. Raises ValueError for negative epochs or none at all."""

    warmup_epochs: int
    finetune_epochs: int
    learning_rate: float
    finetune_learning_rate: float
    loss: str = "bce"
    patience: int = 5

    def __post_init__(self):
        if self.warmup_epochs < 0 or self.finetune_epochs < 0 or self.warmup_epochs + self.finetune_epochs == 0:
            raise errors.InputError(
                f"warmup_epochs={self.warmup_epochs}, finetune_epochs={self.finetune_epochs}: both must be >= 0 "
                "and not both 0"
            )

    @property
    def epochs(self) -> int:
        return self.warmup_epochs + self.finetune_epochs


def warmup_then_finetune(
    model: keras.Model,
    train_data,
    validation_data,
    schedule: Schedule,
    *,
    freeze_batch_norm: bool,
    stage_dir,
    time_budget=None,
    budget_runs: int = 1,
    **fit_options,
) -> pd.DataFrame:
    """Warm-up (backbone frozen, the head trains at the schedule's learning_rate), then fine-tune every layer at its
    finetune_learning_rate.

    The recipe notebooks/02_warmup_finetune.ipynb spells out cell by cell, for 03 and 04's folds. The warm-up
    keeps the randomly initialised head's large early gradients away from the pretrained backbone;
    ``freeze_batch_norm`` keeps the backbone's BatchNormalization in inference mode when it is unfrozen
    (``models.set_backbone_trainable``). Epoch numbers run on across phases; the callbacks are shared, so at the
    end the model holds the weights of the best epoch of both phases (``restore_best_epoch``). Returns both phases'
    history with a "phase" column. ``time_budget`` / ``budget_runs``: see ``make_callbacks``; fit_options: see
    ``fit``.
    """
    callbacks = make_callbacks(
        stage_dir, patience=schedule.patience, time_budget=time_budget, epochs=schedule.epochs, runs=budget_runs
    )
    warmup = pd.DataFrame()
    if schedule.warmup_epochs:
        models.set_backbone_trainable(model, False, freeze_batch_norm=freeze_batch_norm)
        compile_model(model, schedule.learning_rate, schedule.loss)
        warmup = fit(
            model,
            train_data,
            validation_data,
            epochs=schedule.warmup_epochs,
            callbacks=callbacks,
            phase=WARMUP,
            **fit_options,
        )
    models.set_backbone_trainable(model, True, freeze_batch_norm=freeze_batch_norm)
    compile_model(model, schedule.finetune_learning_rate, schedule.loss)
    finetune = fit(
        model,
        train_data,
        validation_data,
        epochs=schedule.epochs,
        initial_epoch=len(warmup),
        callbacks=callbacks,
        phase=FINETUNE,
        **fit_options,
    )
    return restore_best_epoch(model, callbacks, warmup, finetune)

"""Training: seeding, compiling, callbacks, and the warm-up then fine-tune recipe (devices: ``hardware``)."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from hpa_utils import budget, models

LOSSES = ("bce", "focal")
WARMUP, FINETUNE = "warmup", "finetune"


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and the backend (keras.utils.set_random_seed).

    deterministic=True also enables TensorFlow op determinism: reproducible to the bit, slower,
    and it cannot be switched off again in the same process.
    """
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_model(model: keras.Model, learning_rate: float, loss: str = "bce", focal_gamma: float = 2.0) -> keras.Model:
    """Compile with Adam, BCE or focal loss, and epoch-level macro F1 at threshold 0.5 ("f1").

    loss: "bce" (keras.losses.BinaryCrossentropy) or "focal" (keras.losses.BinaryFocalCrossentropy
    with gamma=focal_gamma). Targets must be float (N, 28) multi-hot arrays (F1Score needs them).
    Call again after changing what is trainable. Compiles in the distribution strategy the model was built in;
    under a mixed_float16 policy Keras wraps the optimizer in a LossScaleOptimizer (dynamic loss scaling).
    Raises ValueError for an unknown loss.
    """
    if loss == "bce":
        loss_function = keras.losses.BinaryCrossentropy(name="bce")
    elif loss == "focal":
        loss_function = keras.losses.BinaryFocalCrossentropy(gamma=focal_gamma, name="focal")
    else:
        raise ValueError(f"loss={loss!r} is not supported; choose one of {LOSSES}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate!r} must be positive")
    with model.distribute_strategy.scope():  # the strategy the model was built in: its optimizer's too
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=loss_function,
            metrics=[
                keras.metrics.F1Score(average="macro", threshold=0.5, name="f1"),
                keras.metrics.BinaryAccuracy(name="binary_accuracy"),
            ],
        )
    return model


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


def make_callbacks(
    stage_dir,
    monitor: str = "val_f1",
    mode: str = "max",
    patience: int = 5,
    reduce_lr_patience: int = 2,
    reduce_lr_factor: float = 0.5,
    min_learning_rate: float = 1e-6,
    checkpoint_path=None,
    log_path=None,
    stopping_monitor: str = "val_loss",
) -> list[keras.callbacks.Callback]:
    """The callbacks every stage uses, writing under ``stage_dir``.

    ModelCheckpoint of the best weights by ``monitor`` (validation macro F1; default
    stage_dir/best.weights.h5, Keras 3 format: reload with ``models.load_weights``), saved only once
    the score rises above 0; ReduceLROnPlateau and EarlyStopping on ``stopping_monitor`` (validation
    loss: it moves every epoch, while the F1 at 0.5 of a young model sits at 0 for several epochs and
    would stop training or cut the learning rate before anything was learned); CSVLogger appending to
    stage_dir/history.csv, TerminateOnNaN, and StopOnDivergence (raises TrainingDivergedError when the
    loss became NaN). A checkpoint left by an earlier, interrupted run is removed.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else stage_dir / "best.weights.h5"
    log_path = Path(log_path) if log_path else stage_dir / "history.csv"
    if not checkpoint_path.name.endswith(".weights.h5"):
        raise ValueError(f"checkpoint_path={str(checkpoint_path)!r} must end in .weights.h5 (Keras weights format)")
    checkpoint_path.unlink(missing_ok=True)
    stopping_mode = "min" if "loss" in stopping_monitor else mode
    return [
        keras.callbacks.ModelCheckpoint(
            checkpoint_path,
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=0.0 if mode == "max" else None,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=stopping_monitor,
            mode=stopping_mode,
            factor=reduce_lr_factor,
            patience=reduce_lr_patience,
            min_lr=min_learning_rate,
            verbose=1,
        ),
        keras.callbacks.EarlyStopping(monitor=stopping_monitor, mode=stopping_mode, patience=patience, verbose=1),
        keras.callbacks.CSVLogger(log_path, append=True),
        keras.callbacks.TerminateOnNaN(),
        StopOnDivergence(),
    ]


def _checkpoint(callbacks):
    return next((c for c in callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)), None)


def fit(
    model: keras.Model,
    train_data,
    validation_data=None,
    epochs: int = 1,
    stage_dir=None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    callbacks=None,
    phase: str = "train",
    batch_size: int | None = None,
    verbose: int = 2,
) -> pd.DataFrame:
    """One ``model.fit`` of a compiled model; the history as a DataFrame with "epoch" and "phase".

    epochs is the index to stop before (as in Keras), so a later phase continues the numbering
    with initial_epoch; "epoch" holds Keras' 0-based index, as history.csv does. train_data is a
    tf.data.Dataset of (images, targets) batches or an (images, targets) tuple of arrays (then
    batch_size applies). callbacks default to ``make_callbacks(stage_dir)``. verbose=2 prints one
    line per epoch, which reads well in papermill output.
    """
    if callbacks is None:
        if stage_dir is None:
            raise ValueError("fit needs stage_dir (where checkpoints and history.csv go) or explicit callbacks")
        callbacks = make_callbacks(stage_dir)
    targets = None
    if isinstance(train_data, tuple):  # (images, targets) arrays rather than a tf.data.Dataset
        train_data, targets = train_data
    history = model.fit(
        train_data,
        targets,
        batch_size=batch_size,
        validation_data=validation_data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        callbacks=list(callbacks),
        verbose=verbose,
    )
    frame = pd.DataFrame({key: [float(v) for v in values] for key, values in history.history.items()})
    frame.insert(0, "phase", phase)
    frame.insert(0, "epoch", list(history.epoch))
    return frame


def warmup_then_finetune(
    model: keras.Model,
    train_data,
    validation_data,
    *,
    warmup_epochs: int,
    finetune_epochs: int,
    learning_rate: float,
    finetune_learning_rate: float,
    stage_dir,
    loss: str = "bce",
    focal_gamma: float = 2.0,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    patience: int = 5,
    monitor: str = "val_f1",
    callbacks=None,
    batch_size: int | None = None,
    verbose: int = 2,
    time_budget=None,
    budget_runs: int = 1,
) -> pd.DataFrame:
    """Warm-up (backbone frozen, head trains at learning_rate), then fine-tune everything at finetune_learning_rate.

    The warm-up keeps the randomly initialised head's large early gradients away from the
    pretrained backbone. warmup_epochs=0 skips it: the whole model trains from the first step at
    learning_rate (finetune_learning_rate is then unused); that is how ``01_baseline`` trains, so
    that ``02_warmup_finetune`` shows what the warm-up adds. Epoch numbers run on across phases;
    the callbacks are shared, so the checkpoint keeps the best epoch of both phases by validation
    macro F1, and at the end the model holds the weights of that epoch (the last epoch's when the F1
    never rose above 0). Returns both phases' history with a "phase" column.
    ``time_budget`` (``budget.Budget``): the first steps project the stage's time (times ``budget_runs``, e.g.
    04's folds), and training stops at an epoch boundary when the next epoch would end past its limit (then
    the fine-tuning is skipped if the warm-up stopped); at least one epoch trains.
    """
    if warmup_epochs < 0 or finetune_epochs < 0 or warmup_epochs + finetune_epochs == 0:
        raise ValueError(
            f"warmup_epochs={warmup_epochs}, finetune_epochs={finetune_epochs}: both must be >= 0 and not both 0"
        )
    if callbacks is None:
        callbacks = make_callbacks(stage_dir, monitor=monitor, patience=patience)
    if time_budget is not None:  # before StopOnDivergence, which must come last
        epoch_budget = budget.EpochBudget(time_budget, warmup_epochs + finetune_epochs, runs=budget_runs)
        callbacks = [*callbacks[:-1], epoch_budget, callbacks[-1]]
    common = dict(
        train_data=train_data,
        validation_data=validation_data,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        callbacks=callbacks,
        batch_size=batch_size,
        verbose=verbose,
    )
    frames, epochs_done = [], 0
    if warmup_epochs:
        models.set_backbone_trainable(model, False)
        compile_model(model, learning_rate, loss, focal_gamma)
        frames.append(fit(model, epochs=warmup_epochs, phase=WARMUP, **common))
        epochs_done = int(frames[-1]["epoch"].max()) + 1
    if finetune_epochs and not (frames and time_budget is not None and time_budget.stopped_early):
        models.set_backbone_trainable(model, True)
        compile_model(model, finetune_learning_rate if warmup_epochs else learning_rate, loss, focal_gamma)
        frames.append(
            fit(model, epochs=epochs_done + finetune_epochs, initial_epoch=epochs_done, phase=FINETUNE, **common)
        )
    _restore_best_epoch(model, callbacks, monitor, verbose)
    return pd.concat(frames, ignore_index=True)


def _restore_best_epoch(model: keras.Model, callbacks, monitor: str, verbose: int) -> None:
    """Load the checkpoint's weights (the best epoch of both phases by validation macro F1), where there is one."""
    checkpoint = _checkpoint(callbacks)
    if checkpoint is not None and Path(checkpoint.filepath).is_file():
        models.load_weights(model, checkpoint.filepath)
        if verbose:
            print(f"Restored the weights of the best epoch of both phases ({monitor}={checkpoint.best:.4f}).")

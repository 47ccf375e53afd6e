"""Time budget: the limit a stage is held to, its projected wall time, and the clean stop before the limit.

A Kaggle session ends at a hard limit, and a kernel stopped there is a failed version: nothing it would have
saved reaches the next kernel. So every training stage knows its limit (``TIME_LIMIT_HOURS``), times its first
steps once the step function is traced, prints what the whole stage will take beside the limit, and stops at
an epoch boundary (04: before a fold) when the next one would end past it, keeping its best weights and
writing its files as usual, with ``stopped_early`` in metrics.json saying why.
"""

from __future__ import annotations

import math
import time

import keras

from hpa_utils import errors
from hpa_utils.system import environment

AUTO = -1.0  # TIME_LIMIT_HOURS: Kaggle's session limit less the margin on Kaggle, none elsewhere
TRACING_STEPS = 2  # steps left out of the timing: the first traces and compiles the step function
TIMED_STEPS = 5  # steps timed for the first projection


def limit_hours(setting: float) -> float:
    """The limit for TIME_LIMIT_HOURS ``setting``: hours as given, 0 for none, and for -1 (auto) Kaggle's
    session limit less a margin on Kaggle, 0 elsewhere. Raises ValueError for other negative values."""
    if setting == AUTO:
        return environment.KAGGLE_SESSION_HOURS - environment.KAGGLE_MARGIN_HOURS if environment.is_kaggle() else 0.0
    if not setting >= 0:
        raise errors.InputError(f"TIME_LIMIT_HOURS={setting!r}: hours (0 for no limit, -1 for Kaggle's session limit)")
    return float(setting)


def describe_seconds(seconds: float) -> str:
    """ "42 s", "12.5 min" or "3.2 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class Budget:
    """A stage's clock: started when the notebook started, held to ``hours`` (0: no limit).

    ``stopped_early`` is "" until the stage stops for the limit, then says why and after what.
    """

    def __init__(self, hours: float, started: float | None = None):
        self.hours = float(hours)
        self.started = time.time() if started is None else float(started)
        self.stopped_early = ""
        self.projected_seconds = None

    @property
    def deadline(self) -> float:
        return self.started + self.hours * 3600 if self.hours > 0 else math.inf

    def allows(self, seconds: float) -> bool:
        """Whether work of ``seconds`` would end before the limit."""
        return time.time() + seconds <= self.deadline

    def stop(self, what: str, seconds: float, done: str, verbose: bool = True) -> None:
        """Note that the next ``what`` (of about ``seconds``) is not started, after ``done``; reasons add up
        (an epoch cut short, then no further fold)."""
        reason = (
            f"time limit {self.hours:.3g} h: the next {what} (about {describe_seconds(seconds)}) would end past it; "
            f"stopped after {done}"
        )
        self.stopped_early = "; ".join(filter(None, [self.stopped_early, reason]))
        if verbose:
            print(f"Stopping: {self.stopped_early}.")

    def each(self, items, what: str):
        """Yield ``items`` one by one while the next would end before the limit, judged by the longest so far;
        the first always comes. Where it stops, ``stopped_early`` says after which ``what`` (e.g. "fold")."""
        items, longest = list(items), 0.0
        for position, item in enumerate(items):
            if position and (self.stopped_early or not self.allows(longest)):
                done, planned = ", ".join(map(str, items[:position])), ", ".join(map(str, items))
                self.stop(what, longest, f"{what} {done} of {planned}")
                return
            began = time.time()
            yield item
            longest = max(longest, time.time() - began)

    def limit_text(self) -> str:
        return f"limit {self.hours:.3g} h" if self.hours > 0 else "no time limit"

    __str__ = limit_text

    def record(self) -> dict:
        """What metrics.json keeps: the limit, the projection, the actual seconds and ``stopped_early``."""
        return {
            "time_limit_hours": self.hours,
            "projected_seconds": None if self.projected_seconds is None else round(self.projected_seconds),
            "seconds": round(time.time() - self.started),
            "stopped_early": self.stopped_early,
        }


class EpochBudget(keras.callbacks.Callback):
    """Projects a training run's wall time from its first timed steps and stops it before the budget's limit.

    ``epochs``: all epochs of one training run (both phases of a warm-up); ``runs``: how many such runs the
    stage plans (04's folds), for the projection. It stops at the end of an epoch when the next epoch, as long
    as the longest so far, would end past the limit; the first epoch always trains.
    """

    def __init__(self, budget: Budget, epochs: int, runs: int = 1, verbose: bool = True):
        super().__init__()
        self.budget, self.epochs, self.runs, self.verbose = budget, int(epochs), int(runs), verbose
        self.epochs_done = 0
        self.longest_epoch = 0.0
        self._epoch_started = self._timing_started = None
        self._step = 0
        self._first_run = budget.projected_seconds is None  # 04's later folds keep the first fold's projection

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.time()
        self._step = 0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.epochs_done or not self._first_run:
            return
        if self._step == TRACING_STEPS:
            self._timing_started = time.time()
        elif self._step == TRACING_STEPS + TIMED_STEPS:
            per_step = (time.time() - self._timing_started) / TIMED_STEPS
            steps = self.params.get("steps") or self._step
            self._project(per_step * steps, "its first steps, training only", elapsed=self._epoch_started)

    def on_epoch_end(self, epoch, logs=None):
        duration = time.time() - self._epoch_started
        self.epochs_done += 1
        self.longest_epoch = max(self.longest_epoch, duration)
        if self.epochs_done == 1 and self._first_run:  # the whole epoch, validation included
            self._project(duration, "its first epoch, validation included", elapsed=self._epoch_started)
        left = self.epochs - self.epochs_done
        if left > 0 and not self.budget.allows(self.longest_epoch):
            done = f"epoch {self.epochs_done} of {self.epochs}"
            self.budget.stop("epoch", self.longest_epoch, done, verbose=self.verbose)
            self.model.stop_training = True

    def _project(self, epoch_seconds: float, basis: str, elapsed: float) -> None:
        """Print and keep the stage's projected wall time: what passed until ``elapsed`` (when training began),
        then ``runs`` x ``epochs`` epochs of ``epoch_seconds``."""
        elapsed = elapsed - self.budget.started
        self.budget.projected_seconds = elapsed + epoch_seconds * self.epochs * self.runs
        if self.verbose:
            runs = f"{self.runs} runs of " if self.runs > 1 else ""
            print(
                f"Projected from {basis}: {describe_seconds(self.budget.projected_seconds)} for the stage "
                f"({runs}{self.epochs} epochs of about {describe_seconds(epoch_seconds)} after "
                f"{describe_seconds(elapsed)}), {self.budget.limit_text()}"
            )

"""A notebook's stage, set up in one call: its parameters, data and stage folders, seed, device and precision,
and time limit; its data, pipelines, scores and files go through it, the machine and the budget recorded."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hpa_utils import dataset, errors, stages
from hpa_utils.dataset import cache
from hpa_utils.dataset.synthetic import ensure_dataset
from hpa_utils.pipeline import stage_space
from hpa_utils.results import comparison
from hpa_utils.stages import stage_config, stage_files
from hpa_utils.system import environment

if TYPE_CHECKING:  # TensorFlow: imported by the stages that train (``start``), not by 00_eda
    from hpa_utils.system.hardware import Hardware
    from hpa_utils.training.budget import Budget


def resolve_data_dir(
    data_dir="",
    *,
    synthetic_train: int = stages.SYNTHETIC_DEFAULTS["SYNTHETIC_TRAIN"],
    synthetic_test: int = stages.SYNTHETIC_DEFAULTS["SYNTHETIC_TEST"],
    synthetic_size: int = stages.SYNTHETIC_DEFAULTS["SYNTHETIC_SIZE"],
    synthetic_seed: int = stages.SYNTHETIC_DEFAULTS["SYNTHETIC_SEED"],
    synthetic_min_per_class: int = 2,
) -> Path:
    """The data folder a notebook reads: ``DATA_DIR = ""`` means Kaggle's competition data, else the synthetic dataset.

    A non-empty ``data_dir`` is used as given (FileNotFoundError when it is not a folder). On Kaggle
    it is the competition data wherever it is mounted (InputNotFoundError when it is not attached).
    Elsewhere the embedded synthetic dataset under <repo>/data/ is generated on first use with the
    ``synthetic_*`` arguments and reused afterwards.
    """
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise errors.MissingError(f"DATA_DIR {str(data_dir)!r}: folder not found")
        return path
    if environment.is_kaggle():
        return environment.find_competition_data()
    return Path(
        ensure_dataset(
            environment.REPO_ROOT / "data",
            n_train=synthetic_train,
            n_test=synthetic_test,
            image_size=synthetic_size,
            seed=synthetic_seed,
            min_per_class=synthetic_min_per_class,
        )
    )


@dataclasses.dataclass
class StageRun:
    """One stage as a notebook runs it. ``config``: its parameters, one typed record; ``clock`` (the time budget) and
    ``machine`` (strategy and precision) only for the stages that train."""

    stage: str
    config: stage_config.StageConfig
    data_dir: Path
    stage_dir: Path
    clock: Budget | None = None
    machine: Hardware | None = None

    @property
    def output_dir(self) -> str:
        return self.config.output_dir

    @property
    def upstream_dir(self) -> str:
        return self.config.upstream_dir or ""

    def scope(self):
        """The context to build models in (``with run.scope():``): the tf.distribute strategy's scope under
        TensorFlow; none needed under JAX, whose batches Keras' distribution spreads over the devices."""
        return self.machine.scope()

    @property
    def replicas(self) -> int:
        return self.machine.replicas if self.machine else 1

    def __str__(self) -> str:
        where = f"{self.stage}: data {self.data_dir} -> {self.stage_dir}"
        return where + (f"; {self.machine}; {self.clock}" if self.machine else "")

    def upstream(self, stage: str, required: bool = True) -> Path | None:
        """A finished earlier stage's folder (in UPSTREAM_DIR, the run, or a mounted Kaggle output); None when it has
        not run and is not ``required`` (StageMissingError naming what to run otherwise)."""
        finder = stages.find_stage if required else stages.optional_stage
        return finder(stage, self.output_dir, self.upstream_dir)

    def images(self, split: str, ids, image_size: int, channels: str):
        """The ``split``'s images as uint8 (N, side, side, channels), decoded once into the cache (CACHE)."""
        mode = self.config.cache
        return cache.build_cache(self.data_dir, split, ids, image_size, channels, mode=mode)

    def training_data(self, image_size: int, channels: str, *, validation_fraction: float = 0.2, split_from=None):
        """train.csv's images (cached), targets and validation split (``split_from``'s when that stage has run, so
        stages score the same images), with EXTERNAL_DIR's images added for training; printed in one line."""
        from hpa_utils.pipeline import training_data  # TensorFlow's tf.data: the stages that train, not 00_eda

        split_stage = self.upstream(split_from, required=False) if split_from else None
        cache_mode = self.config.cache
        data = training_data.load_training_data(
            self.data_dir,
            image_size,
            channels,
            stage_dir=self.stage_dir,
            validation_fraction=validation_fraction,
            seed=self.config.seed,
            split_from=split_stage,
            cache_mode=cache_mode,
        )
        external_dir = self.config.external_dir or ""
        data = training_data.add_external(
            data, external_dir, image_size=image_size, channels=channels, cache_mode=cache_mode
        )
        made = f"from {split_stage.name}" if split_stage else "made here"
        print(f"{data.describe()}; validation split {made}")
        return data

    def pipelines(self, data, *, batch_size: int, augmentation: str = "none", held_out=None):
        """(training, validation) tf.data pipelines over ``data``'s images: the validation split held out, or
        ``held_out`` (04: a fold); seeded with SEED, each batch split over the replicas."""
        from hpa_utils.pipeline import training_data  # TensorFlow (see training_data above)

        held_out = data.is_validation if held_out is None else held_out
        return training_data.train_and_validation_pipelines(
            data.images,
            data.targets,
            held_out,
            batch_size=batch_size,
            augmentation=augmentation,
            seed=self.config.seed,
            replicas=self.replicas,
        )

    def evaluate(self, probabilities, data) -> dict:
        """The validation scores (``evaluation.evaluate_validation``), the predictions kept for the comparisons."""
        from hpa_utils.results import evaluation  # TensorFlow, through predict (see training_data above)

        return evaluation.evaluate_validation(probabilities, data, stage_dir=self.stage_dir)

    def record(self) -> dict:
        """What metrics.json keeps of the run: the time budget, the machine and the notebook's parameters."""
        clock = self.clock.record() if self.clock else {}
        machine = self.machine.record() if self.machine else {}
        return {**clock, **machine, "parameters": self.config.values()}

    def save(self, model=None, history=None, *, scores: dict, **details) -> dict:
        """Write the stage's weights and history (when there is a model), config.json (its parameters; how its model
        was built, from ``details``) and, last, metrics.json: ``scores``, ``details`` and the run's record. Prints
        what it wrote; returns the metrics."""
        if model is None:  # 00_eda's summary, 04's merged folds: config.json and metrics.json
            stage_config.save(self.stage_dir, self.config, stage_config.ModelRecord.from_details(details))
            result = {**scores, **details, **self.record()}
            stage_files.write_metrics(self.stage_dir, result)
        else:
            from hpa_utils.stages import stage_model  # TensorFlow (see training_data above)

            result = stage_model.save_stage(
                self.stage_dir, model, history, scores=scores, config=self.config, **details, **self.record()
            )
        written = [stages.WEIGHTS_FILE, stages.HISTORY_FILE] if model is not None else []
        print(f"saved {', '.join([*written, stages.CONFIG_FILE, stages.METRICS_FILE])} in {self.stage_dir}")
        return result

    def per_class(self) -> dict:
        """Per-class F1 of every finished training stage (for ``plots.per_class_f1``)."""
        return stage_files.per_class_by_stage(self.output_dir, self.upstream_dir)

    def table(self):
        """Every finished stage's scores beside the stage before (``comparison.table``)."""
        return comparison.table(self.output_dir, self.upstream_dir)

    def versus_before(self) -> str:
        """This stage against the stage before on the same images, with the paired 95 % interval."""
        return comparison.versus_before(self.stage, self.output_dir, self.upstream_dir)


def start(stage: str, namespace: dict) -> StageRun:
    """Set up ``stage`` from a notebook's ``namespace`` (``globals()``: its parameters are its upper-case literals):
    the data folder (DATA_DIR; "": Kaggle's on Kaggle, else the embedded dataset, generated on first use), the stage
    folder under OUTPUT_DIR and, for a stage that trains, Keras' backend (KERAS_BACKEND, before Keras is imported),
    the seed (SEED), the time budget (TIME_LIMIT_HOURS), the devices and precision policy (MIXED_PRECISION,
    BATCH_SIZE checked against the devices). Prints one line."""
    started = time.time()
    config = stage_config.StageConfig.from_namespace(stage, namespace)
    data_dir = resolve_data_dir(
        config.data_dir,
        synthetic_train=config.synthetic_train,
        synthetic_test=config.synthetic_test,
        synthetic_size=config.synthetic_size,
        synthetic_seed=config.synthetic_seed,
    )
    run = StageRun(stage, config, data_dir, stages.stage_dir(config.output_dir, stage))
    for warning in stage_space.space_warnings(
        config,
        run_dir=run.stage_dir.parent,
        cache_dir=cache.default_cache_dir(),
        counts=dataset.image_counts(data_dir),
        kaggle_working=environment.kaggle_working() if environment.is_kaggle() else None,
    ):
        print(f"warning: {warning}")
    if stages.record(stage).trains:
        environment.choose_backend(config.keras_backend)  # before Keras is first imported
        from hpa_utils.system import hardware  # TensorFlow: only where a stage trains (start-up time)
        from hpa_utils.training import budget, fitting

        run.clock = budget.Budget(budget.limit_hours(config.time_limit_hours), started=started)
        fitting.set_seed(config.seed)
        run.machine = hardware.prepare(config.mixed_precision, batch_size=config.batch_size)
    print(run)
    return run

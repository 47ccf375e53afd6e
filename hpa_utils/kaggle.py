"""The Kaggle export: each notebook as a Kaggle kernel folder, the hpa_utils package as the dataset they import."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from hpa_utils import environment, files, parameters, stages, wheels

DATASET_SLUG = environment.PACKAGE_DATASET  # the notebooks find the package in it by its hpa_utils/__init__.py
DATASET_LICENSE = "CC-BY-SA-3.0"
MARKER = ".hpa-kaggle-export"  # marks a folder this module wrote, so a re-export may replace it
METADATA_FILE = "kernel-metadata.json"
DATASET_METADATA_FILE = "dataset-metadata.json"
KAGGLE_RESOLVED = ("DATA_DIR", "OUTPUT_DIR")  # left "": the notebooks resolve them to /kaggle/input and /kaggle/working
NO_GPU_STAGES = ("00_eda",)  # reads CSVs and a few images; a GPU would only use up the weekly quota
# --accelerator -> kernel-metadata.json's machine_shape, and the name Kaggle's editor shows. Without a
# machine_shape, a pushed GPU kernel has been given a P100, on which parts of today's image fail
# (kaggle-cli issues #821, #1151); NvidiaTeslaT4 is the editor's "GPU T4 x2": two GPUs, mixed precision.
# The kaggle CLI (2.2.5) calls NvidiaTeslaP100 retired and warns that such sessions run on the T4s instead.
ACCELERATORS = {"t4x2": ("NvidiaTeslaT4", "GPU T4 x2"), "p100": ("NvidiaTeslaP100", "GPU P100"), "none": (None, "none")}
DEFAULT_ACCELERATOR = "t4x2"
FOLDED_STAGE = "04_kfold"  # --fold-kernels: one kernel per fold, and this stage's kernel merges them
DATASET_FILES = ("requirements.txt", "requirements-nodeps.txt")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_DATASET_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]*")
_COPY_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def check_user(user: str) -> str:
    """Return ``user`` when it can be a Kaggle user name; ValueError otherwise (empty, spaces, slashes, ...)."""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise ValueError(
            f"Kaggle user name {user!r} is not valid: use the name from your profile address "
            f"kaggle.com/<name> (letters, digits, '-' or '_'; no spaces or slashes)"
        )
    return user


def _check_dataset_reference(reference: str) -> str:
    if not isinstance(reference, str) or not _DATASET_REFERENCE.fullmatch(reference):
        raise ValueError(f"weights dataset {reference!r}: expected owner/slug as in kaggle.com/datasets/owner/slug")
    return reference


def check_accelerator(accelerator: str) -> str:
    """Return ``accelerator`` when it is one of ACCELERATORS; ValueError listing them otherwise."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"accelerator {accelerator!r} is not supported; choose one of {', '.join(ACCELERATORS)}")
    return accelerator


def kernel_title(stage: str, fold: int | None = None) -> str:
    """A title that Kaggle resolves to the kernel's slug (lowercased, spaces -> dashes): "HPA 01 baseline",
    "HPA 04 kfold fold 2" (``kernel_slug``)."""
    return "HPA " + stages.check_stage(stage).replace("_", " ") + ("" if fold is None else f" fold {fold}")


def kernel_slug(stage: str, fold: int | None = None) -> str:
    """ "hpa-01-baseline"; a fold kernel of --fold-kernels: "hpa-04-kfold-fold-2"."""
    return stages.kernel_slug(stage) + ("" if fold is None else f"-fold-{fold}")


def uses_imagenet(values: dict) -> bool:
    """Whether a stage with these parameter values loads ImageNet weights (04 only when it starts afresh)."""
    return values.get("WEIGHTS") == "imagenet" and not values.get("START_FROM")


def kernel_metadata(
    user: str,
    stage: str,
    public: bool = False,
    weights_dataset: str | None = None,
    imagenet: bool = False,
    accelerator: str = DEFAULT_ACCELERATOR,
    fold: int | None = None,
    fold_kernels: int = 0,
) -> dict:
    """The kernel-metadata.json of ``stage`` for ``user``.

    ``fold``: the kernel trains that fold of 04 alone (``--fold-kernels``); ``fold_kernels``: this (04's)
    kernel merges that many fold kernels, whose outputs it reads besides its upstream stages'.

    ``accelerator`` (ACCELERATORS): the machine every stage but 00_eda asks for with ``machine_shape``;
    "none": no GPU anywhere.

    ``imagenet``: the stage loads ImageNet weights. This competition takes submissions as CSV files,
    so a kernel may have internet: Keras then downloads the weights, and internet is on. With a
    ``weights_dataset`` ("owner/slug", a dataset of Keras "notop" weight files) that dataset is
    attached instead and internet stays off, as it does for every kernel that needs no download.
    """
    check_user(user)
    machine_shape = ACCELERATORS[check_accelerator(accelerator)][0]
    gpu = stage not in NO_GPU_STAGES and machine_shape is not None
    sources = [f"{user}/{DATASET_SLUG}"]
    if weights_dataset is not None:
        _check_dataset_reference(weights_dataset)
        if imagenet:
            sources.append(weights_dataset)
    slug = kernel_slug(stage, fold)
    upstream = [kernel_slug(name) for name in stages.record(stage).upstream]
    upstream += [kernel_slug(stage, index) for index in range(fold_kernels)]
    metadata = {
        "id": f"{user}/{slug}",
        "title": kernel_title(stage, fold),
        "code_file": f"{slug}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": not public,
        "enable_gpu": gpu,
        "enable_internet": imagenet and weights_dataset is None,
        "dataset_sources": sources,
        "competition_sources": [environment.COMPETITION],
        "kernel_sources": [f"{user}/{source}" for source in upstream],
    }
    return metadata | ({"machine_shape": machine_shape} if gpu else {})


def kaggle_parameters(preset: dict, stage: str, declared: dict) -> dict:
    """The defaults ``stage`` gets on Kaggle: the preset's values for names it declares, DATA_DIR/OUTPUT_DIR ""."""
    values = parameters.stage_values(preset, stage, declared, skip=KAGGLE_RESOLVED)
    values.update({name: "" for name in KAGGLE_RESOLVED if name in declared})
    return values


def _read_notebooks(notebooks_dir: Path, notebooks: list[str]) -> dict:
    """{stage: (path, notebook, declared parameters)}; FileNotFoundError naming a missing notebook."""
    import nbformat

    loaded = {}
    for stage in notebooks:
        path = notebooks_dir / f"{stage}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: notebook not found; the export needs every notebook of the preset")
        notebook = nbformat.read(path, as_version=4)
        declared = parameters.declared_in_source(parameters.parameters_cell(notebook, path).source, str(path))
        loaded[stage] = (path, notebook, declared)
    return loaded


def _write_kernel(
    folder: Path,
    path: Path,
    notebook,
    declared: dict,
    *,
    user: str,
    preset: dict,
    public: bool,
    weights_dataset: str | None,
    accelerator: str,
    stage: str,
    fold: int | None = None,
    fold_kernels: int = 0,
    overrides: dict | None = None,
) -> dict:
    """One kernel folder: the notebook with the preset's values (and ``overrides``) as defaults, and its
    kernel-metadata.json (``fold``, ``fold_kernels``: see ``kernel_metadata``).

    Returns the export table's row for it (folder, accelerator, internet, where its weights come from).
    """
    import copy

    import nbformat

    notebook = copy.deepcopy(notebook)  # one notebook may become several kernels
    values = kaggle_parameters(preset, stage, declared) | (overrides or {})
    effective = {name: default for name, (_, default) in declared.items()} | values
    imagenet = uses_imagenet(effective)
    if imagenet and weights_dataset is not None:
        values["WEIGHTS"] = effective["WEIGHTS"] = _notop_file(effective.get("BACKBONE"), stage)
    metadata = kernel_metadata(
        user,
        stage,
        public,
        weights_dataset,
        imagenet=imagenet,
        accelerator=accelerator,
        fold=fold,
        fold_kernels=fold_kernels,
    )
    cell = parameters.parameters_cell(notebook, path)
    cell.source = parameters.set_parameter_defaults(cell.source, values, str(path))
    for each in notebook.cells:
        if each.cell_type == "code":
            each.outputs = []
            each.execution_count = None
    nbformat.validate(notebook)
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / metadata["code_file"])
    files.write_json(folder / METADATA_FILE, metadata)
    role = {"fold": fold} if fold is not None else {"merges": fold_kernels} if fold_kernels else {}
    return {"folder": folder.name, **role} | _kernel_row(stage, metadata, effective, weights_dataset, accelerator)


def _kernels(stage: str, declared: dict, preset: dict, fold_kernels: bool) -> list[dict]:
    """The kernels one notebook becomes: itself; or, for 04 with ``fold_kernels``, one kernel per fold
    (FOLDS=[k]) and the merge kernel (FOLD_KERNELS=True; CACHE=stream, since it decodes no image)."""
    if stage != FOLDED_STAGE or not fold_kernels:
        return [{"folder": stage, "stage": stage}]
    if "FOLD_KERNELS" not in declared:
        raise ValueError(f"{stage}: its notebook has no FOLD_KERNELS parameter, so it cannot merge fold kernels")
    n_folds = kaggle_parameters(preset, stage, declared).get("N_FOLDS", declared["N_FOLDS"][1])
    folds = [
        {"folder": f"{stage}_fold_{fold}", "stage": stage, "fold": fold, "overrides": {"FOLDS": [fold]}}
        for fold in range(n_folds)
    ]
    merge = {"FOLD_KERNELS": True, "FOLDS": [], "CACHE": "stream"}
    return [*folds, {"folder": stage, "stage": stage, "fold_kernels": n_folds, "overrides": merge}]


def _write_package_dataset(folder: Path, user: str, wheel_dir=None) -> None:
    """The hpa_utils package, presets, requirements and offline wheels, with dataset-metadata.json, as Kaggle wants."""
    root = environment.REPO_ROOT
    shutil.copytree(root / "hpa_utils", folder / "hpa_utils", ignore=_COPY_IGNORED)
    if (root / "presets").is_dir():
        shutil.copytree(root / "presets", folder / "presets", ignore=_COPY_IGNORED)
    for name in DATASET_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, folder / name)
    carried = wheels.collect(folder / wheels.WHEELS_FOLDER, cache=wheel_dir)
    description = (
        "The `hpa_utils` package of the Human Protein Atlas notebook bundle (HPA 00 eda ... HPA 04 kfold). "
        "Each kernel finds it under /kaggle/input by its hpa_utils/__init__.py, wherever Kaggle mounts the "
        "dataset, and puts it on sys.path, so `from hpa_utils import dataset, models` works offline. Holds "
        "hpa_utils/ (with its data/*.csv), presets/, the requirements files, and wheels/ ("
        + ", ".join(path.name for path in carried)
        + "), imported from there only where Kaggle's image lacks them."
    )
    (folder / "README.md").write_text(f"# hpa-utils\n\n{description}\n", encoding="utf-8")
    files.write_json(
        folder / DATASET_METADATA_FILE,
        {
            "title": "HPA utils package",
            "id": f"{user}/{DATASET_SLUG}",
            "subtitle": "The hpa_utils package the HPA notebook kernels import",
            "description": description,
            "licenses": [{"name": DATASET_LICENSE}],
        },
    )


def _weights_source(stage: str, values: dict, weights_dataset: str | None) -> str:
    """Where a kernel's model weights come from, in words (for the export's table)."""
    if values.get("FOLD_KERNELS"):
        return "no model: merges the fold kernels' predictions"
    if values.get("START_FROM"):
        return f"{values['START_FROM']}'s model (its kernel output)"
    if "WEIGHTS" not in values:
        upstream = stages.record(stage).upstream
        return f"{upstream[-1]}'s model (its kernel output)" if stage != "00_eda" else "no model"
    if uses_imagenet(values):
        return "ImageNet, downloaded by Keras"
    if values["WEIGHTS"] == "none":
        return "none (random initialisation)"
    found_in = f" in {weights_dataset}" if weights_dataset else ""
    return f"{values['WEIGHTS']}{found_in}"


def _kernel_row(stage: str, metadata: dict, values: dict, weights_dataset: str | None, accelerator: str) -> dict:
    return {
        "stage": stage,
        "kernel": metadata["id"],
        "accelerator": ACCELERATORS[accelerator][1] if metadata["enable_gpu"] else "none",
        "internet": metadata["enable_internet"],
        "weights": _weights_source(stage, values, weights_dataset),
    }


def describe(out) -> str:
    """The export's table: per kernel, the accelerator it asks for, internet and where its weights come from."""
    rows = files.read_json(Path(out) / MARKER)["kernels"]
    width = max(len(row["kernel"]) for row in rows)
    lines = [f"{'kernel':<{width}}  {'accelerator':<11}  internet  weights"]
    for row in rows:
        lines.append(
            f"{row['kernel']:<{width}}  {row['accelerator']:<11}  {'on ' if row['internet'] else 'off'}"
            f"       {row['weights']}"
        )
    return "\n".join(lines)


def _upload_guide(user: str, preset: str, rows: list[dict]) -> str:
    """UPLOAD.md: what to do, in order, with the commands for ``user``."""
    lines = [
        "# Upload to Kaggle, in this order",
        "",
        f"Written by `python -m hpa_utils kaggle-export` for {user} (preset {preset}). You need the kaggle CLI",
        "(`pip install kaggle`, your API token in `~/.kaggle/kaggle.json`), the competition's rules accepted on",
        f"kaggle.com/c/{environment.COMPETITION}, and a phone-verified account (Kaggle lends GPUs and internet",
        "only to those). Run the commands from this folder.",
        "",
        "1. The package, as a dataset (once; after a change: "
        f"`kaggle datasets version -p {DATASET_SLUG} --dir-mode zip -m 'update'`):",
        "",
        f"       kaggle datasets create -p {DATASET_SLUG} --dir-mode zip",
        "",
        "   Wait until `kaggle datasets status " + f"{user}/{DATASET_SLUG}` says ready.",
        "",
        "2. The kernels, one after the other: each reads the outputs of the kernels before it, so wait until a",
        "   kernel is COMPLETE before pushing the next.",
        "",
    ]
    for row in rows:
        if row.get("fold") == 0:
            lines += [
                "",
                "   The fold kernels need only the kernels above: push them together, they run side by side.",
                "",
            ]
        if row.get("merges"):
            lines += ["", "   The merge kernel, once every fold kernel is COMPLETE:", ""]
        lines += [f"       kaggle kernels push -p {row['folder']}", f"       kaggle kernels status {row['kernel']}"]
    last = rows[-1]["kernel"]
    lines += [
        "",
        "3. The submission:",
        "",
        f"       kaggle kernels output {last} -p results/",
        f"       kaggle competitions submit -c {environment.COMPETITION} -f results/04_kfold/{stages.SUBMISSION_FILE} "
        "-m 'HPA 04'",
        "",
        "| kernel | accelerator | internet | weights |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {row['kernel']} | {row['accelerator']} | {'on' if row['internet'] else 'off'} | {row['weights']} |"
        for row in rows
    ]
    folded = any(row.get("merges") for row in rows)
    session, limit = (
        environment.KAGGLE_SESSION_HOURS,
        environment.KAGGLE_SESSION_HOURS - environment.KAGGLE_MARGIN_HOURS,
    )
    lines += [
        "",
        _accelerator_note(rows),
        "",
        f"Kaggle ends a GPU session at {session:g} hours. Each training kernel holds itself to {limit:g} "
        "(TIME_LIMIT_HOURS=-1),",
        "prints its projected time after its first steps and its first epoch, and stops cleanly at an epoch",
        f"boundary (04: before a fold) rather than be killed, with `stopped_early` in its {stages.METRICS_FILE}. "
        + (
            "This export has 04 as one kernel per fold and a merge kernel (--fold-kernels), so no kernel holds "
            "more than one fold's training."
            if folded
            else "When 04's projection (its first fold's line times the folds) is over the limit, export again "
            "with --fold-kernels: 04 becomes one kernel per fold, run side by side, and a merge kernel."
        ),
    ]
    lines += [
        "",
        "Where Kaggle mounts the inputs does not matter. Today: `/kaggle/input/competitions/<slug>/`,",
        "`/kaggle/input/datasets/<owner>/<slug>/`, `/kaggle/input/notebooks/<owner>/<kernel>/`; earlier kernels",
        "saw `/kaggle/input/<slug>/` for all three. The notebooks find the package, the competition data and each",
        "upstream stage by what its folder holds. A kernel that misses an input stops with a message saying what",
        "to add and listing what is mounted.",
        "",
    ]
    return "\n".join(lines)


def _accelerator_note(rows: list[dict]) -> str:
    """Why the kernels ask for the accelerator they do (UPLOAD.md)."""
    chosen = {row["accelerator"] for row in rows} - {"none"}
    if not chosen:
        return "No kernel asks for a GPU (`--accelerator none`): every stage trains on the CPU, slowly at full size."
    return (
        f"The training kernels ask for {', '.join(sorted(chosen))} with `machine_shape` in kernel-metadata.json "
        "(`--accelerator t4x2|p100|none` chooses). GPU T4 x2 is two GPUs: each stage trains with MirroredStrategy, "
        "BATCH_SIZE split between them, and in mixed precision (float16 on the T4s' tensor cores; "
        "MIXED_PRECISION=auto). A P100 has no tensor cores, so it trains in float32; the kaggle CLI (2.2.5) calls "
        "it retired and says Kaggle runs such sessions on GPU T4 x2. Without a machine_shape, Kaggle has given "
        "pushed kernels a P100, on which parts of today's image fail."
    )


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; nothing was touched. Choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(
            f"{out} is not empty and is not an earlier Kaggle export (no {MARKER} in it); "
            f"nothing was touched. Choose another --out, or empty that folder."
        )


def _replace_folder(staging: Path, out: Path) -> None:
    """Put ``staging`` where ``out`` is: an earlier export is renamed away first and removed after."""
    if not out.exists():
        staging.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_guide_and_marker(folder: Path, user: str, preset: dict, rows: list[dict]) -> None:
    """UPLOAD.md (what to push, in order) and the marker that lets a later export replace this one."""
    (folder / "UPLOAD.md").write_text(_upload_guide(user, preset["name"], rows), encoding="utf-8")
    marker = {
        "written_by": "python -m hpa_utils kaggle-export",
        "user": user,
        "preset": preset["name"],
        "notebooks": preset["notebooks"],
        "kernels": rows,
    }
    files.write_json(folder / MARKER, marker)


def export(
    user: str,
    out="kaggle_export",
    *,
    public: bool = False,
    preset: str = "full",
    weights_dataset: str | None = None,
    notebooks_dir=None,
    wheel_dir=None,
    accelerator: str = DEFAULT_ACCELERATOR,
    fold_kernels: bool = False,
) -> Path:
    """Write the Kaggle upload folders for ``user`` into ``out`` and return ``out``.

    ``out/<stage>/`` holds each notebook (parameters set to the preset's values, DATA_DIR and
    OUTPUT_DIR left "") and its kernel-metadata.json; ``out/hpa-utils/`` is the package as a dataset,
    with the wheels of imgaug and iterative-stratification (from ``wheel_dir``, default <repo>/.whl/,
    else downloaded with pip). Stages that load ImageNet weights get internet; with ``weights_dataset``
    ("owner/slug") they stay offline, that dataset is attached, and their WEIGHTS become the backbone's
    "notop" file name, which the kernel finds wherever the dataset is mounted. ``accelerator`` (ACCELERATORS,
    default t4x2) is the machine the training kernels ask for (``machine_shape``). ``fold_kernels``: 04 becomes
    one kernel per fold (``<out>/04_kfold_fold_<k>/``, FOLDS=[k]) and a merge kernel (``<out>/04_kfold/``) that
    reads their outputs, so that no kernel holds all folds' training time. ``preset`` is a preset
    name or YAML file; ``notebooks_dir`` defaults to the repository's notebooks/.
    Raises ValueError for a bad user name or preset, FileExistsError for an ``out`` that holds
    anything but an earlier export (a re-export replaces an earlier one whole), RuntimeError when a
    wheel can be neither found nor downloaded.
    """
    check_user(user)
    check_accelerator(accelerator)
    if weights_dataset is not None:
        _check_dataset_reference(weights_dataset)
    preset_record = parameters.load_preset(preset)
    out = Path(out).expanduser().resolve()
    _check_out(out)
    notebooks = preset_record["notebooks"]
    loaded = _read_notebooks(Path(notebooks_dir) if notebooks_dir else parameters.NOTEBOOKS_DIR, notebooks)
    parameters.check_names(preset_record, {}, {stage: declared for stage, (_, _, declared) in loaded.items()})

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        rows = [
            _write_kernel(
                staging / kernel.pop("folder"),
                path,
                notebook,
                declared,
                user=user,
                preset=preset_record,
                public=public,
                weights_dataset=weights_dataset,
                accelerator=accelerator,
                **kernel,
            )
            for stage, (path, notebook, declared) in loaded.items()
            for kernel in _kernels(stage, declared, preset_record, fold_kernels)
        ]
        _write_package_dataset(staging / DATASET_SLUG, user, wheel_dir)
        _write_guide_and_marker(staging, user, preset_record, rows)
        _check_out(out)  # still safe to replace (nothing appeared there meanwhile)
        _replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _notop_file(backbone: str | None, stage: str) -> str:
    """The Keras ImageNet "notop" weights file name of ``backbone`` (what a dataset of Keras weights holds)."""
    from hpa_utils import models  # imports Keras: only for exports that fill in weights files

    if backbone not in models.BACKBONES or not models.BACKBONES[backbone][2].endswith(".h5"):
        raise ValueError(f"{stage}: backbone {backbone!r} has no ImageNet weights file to take from a dataset")
    return models.BACKBONES[backbone][2]

"""The Kaggle export (`python -m hpa_utils kaggle-export`): every notebook as a kernel folder (``kernel_folders``),
the package dataset the kernels import (hpa_utils, the presets, the requirements files and the wheels of what a
Kaggle image lacks: imgaug, iterative-stratification, EfficientNet-Lite0's weights, with its dataset-metadata.json),
UPLOAD.md (from ``upload.md``) saying what to push in order, and the export's table."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path

from hpa_utils import errors, stages
from hpa_utils.kaggle.kernel_folders import (
    ACCELERATORS,
    DATASET_SLUG,
    DEFAULT_ACCELERATOR,
    METADATA_FILE,
    Account,
    Notebook,
    kernels,
    write_kernel,
)
from hpa_utils.stages import parameters
from hpa_utils.system import atomic_files, environment, offline_wheels

DATASET_LICENSE = "CC-BY-SA-3.0"
DATASET_METADATA_FILE = "dataset-metadata.json"
DATASET_FILES = ("requirements.txt", "requirements-nodeps.txt")
_COPY_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def write_package_dataset(folder: Path, user: str, wheel_dir=None) -> None:
    """The hpa_utils package, presets, requirements and offline wheels, with dataset-metadata.json, as Kaggle wants."""
    root = environment.REPO_ROOT
    shutil.copytree(root / "hpa_utils", folder / "hpa_utils", ignore=_COPY_IGNORED)
    if (root / "presets").is_dir():
        shutil.copytree(root / "presets", folder / "presets", ignore=_COPY_IGNORED)
    for name in DATASET_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, folder / name)
    carried = collect_wheels(folder / offline_wheels.WHEELS_FOLDER, cache=wheel_dir)
    description = (
        "The `hpa_utils` package of the Human Protein Atlas notebook bundle (HPA 00 eda ... HPA 04 kfold). "
        "Each kernel finds it under /kaggle/input by its hpa_utils/__init__.py, wherever Kaggle mounts the "
        "dataset, and puts it on sys.path, so `from hpa_utils import dataset, models` works offline. Holds "
        "hpa_utils/ (with its dataset/*.csv), presets/, the requirements files, and wheels/ ("
        + ", ".join(path.name for path in carried)
        + "), imported from there only where Kaggle's image lacks them."
    )
    (folder / "README.md").write_text(f"# hpa-utils\n\n{description}\n", encoding="utf-8")
    atomic_files.write_json(
        folder / DATASET_METADATA_FILE,
        {
            "title": "HPA utils package",
            "id": f"{user}/{DATASET_SLUG}",
            "subtitle": "The hpa_utils package the HPA notebook kernels import",
            "description": description,
            "licenses": [{"name": DATASET_LICENSE}],
        },
    )


def _download(requirement: str, cache: Path) -> str:
    """Download one wheel into ``cache`` with pip (no dependencies); the error text, or "" on success.

    pip writes into a fresh folder beside the cache and each wheel is then renamed into it, so a
    reader (another export, another test worker) never sees a half-written wheel.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as folder:
        error = _pip_download(requirement, Path(folder))
        for wheel in Path(folder).glob("*.whl"):
            os.replace(wheel, cache / wheel.name)
    return error


def _pip_download(requirement: str, folder: Path) -> str:
    """Download one wheel with pip (no dependencies); the error text, or "" on success."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(folder),
        requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["pip failed"])[-1]


def collect_wheels(out: Path, cache: Path | None = None, versions: dict | None = None) -> list[Path]:
    """Copy the wheel of each of WHEELS, at the installed version, into ``out``; return the copied files.

    Looks in ``cache`` (default <repo>/.whl/) first, else downloads it there with ``pip download
    --no-deps``. ``versions`` ({distribution: version}) overrides the installed versions. Raises
    RuntimeError naming the wheel, the cache and pip's error when neither works.
    """
    cache = Path(cache) if cache else offline_wheels.LOCAL_CACHE
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for distribution in offline_wheels.WHEELS.values():
        version = (versions or {}).get(distribution) or importlib.metadata.version(distribution)
        wheel = offline_wheels.find_wheel(distribution, cache, version)
        if wheel is None:
            error = _download(f"{distribution}=={version}", cache)
            wheel = offline_wheels.find_wheel(distribution, cache, version)
            if wheel is None:
                raise errors.SetupError(
                    f"no wheel of {distribution}=={version}: not in {cache}, and `pip download` failed "
                    f"({error or 'no wheel written'}). Put {offline_wheels.wheel_prefix(distribution)}{version}-*.whl "
                    f"into {cache} (or pass another wheel folder) and export again."
                )
        copied.append(Path(shutil.copy2(wheel, out / wheel.name)))
    return copied


MARKER = ".hpa-kaggle-export"  # marks a folder this module wrote, so a re-export may replace it
UPLOAD_TEMPLATE = Path(__file__).with_name("upload.md")

__all__ = ["ACCELERATORS", "DATASET_SLUG", "DEFAULT_ACCELERATOR", "MARKER", "METADATA_FILE", "describe", "export"]


def describe(out) -> str:
    """The export's table: per kernel, the accelerator it asks for, internet and where its weights come from."""
    rows = atomic_files.read_json(Path(out) / MARKER)["kernels"]
    width = max(len(row["kernel"]) for row in rows)
    lines = [f"{'kernel':<{width}}  {'accelerator':<11}  internet  weights"]
    for row in rows:
        lines.append(
            f"{row['kernel']:<{width}}  {row['accelerator']:<11}  {'on ' if row['internet'] else 'off'}"
            f"       {row['weights']}"
        )
    return "\n".join(lines)


def _upload_guide(user: str, preset: str, rows: list[dict]) -> str:
    """UPLOAD.md: ``data/upload.md`` with ``user``'s commands, the kernels in the order to push them and their table."""
    pushes = []
    for row in rows:
        if row.get("fold") == 0:
            pushes += [
                "   The fold kernels need only the kernels above: push them together, they run side by side.",
                "",
            ]
        if row.get("merges"):
            pushes += ["", "   The merge kernel, once every fold kernel is COMPLETE:", ""]
        pushes += [f"       kaggle kernels push -p {row['folder']}", f"       kaggle kernels status {row['kernel']}"]
    table = [
        f"| {row['kernel']} | {row['accelerator']} | {'on' if row['internet'] else 'off'} | {row['weights']} |"
        for row in rows
    ]
    folds_note = (
        "This export has 04 as one kernel per fold and a merge kernel (--fold-kernels), so no kernel holds more "
        "than one fold's training."
        if any(row.get("merges") for row in rows)
        else "When 04's projection (its first fold's line times the folds) is over the limit, export again with "
        "--fold-kernels: 04 becomes one kernel per fold, run side by side, and a merge kernel."
    )
    return string.Template(UPLOAD_TEMPLATE.read_text(encoding="utf-8")).substitute(
        user=user,
        preset=preset,
        competition=environment.COMPETITION,
        dataset=DATASET_SLUG,
        pushes="\n".join(pushes),
        last_kernel=rows[-1]["kernel"],
        submission=stages.SUBMISSION_FILE,
        table="\n".join(table),
        accelerator_note=_accelerator_note(rows),
        session_hours=f"{environment.KAGGLE_SESSION_HOURS:g}",
        limit_hours=f"{environment.KAGGLE_SESSION_HOURS - environment.KAGGLE_MARGIN_HOURS:g}",
        metrics_file=stages.METRICS_FILE,
        folds_note=folds_note,
    )


def _accelerator_note(rows: list[dict]) -> str:
    """Why the kernels ask for the accelerator they do (UPLOAD.md)."""
    chosen = {row["accelerator"] for row in rows} - {"none"}
    if not chosen:
        return "No kernel asks for a GPU (`--accelerator none`): every stage trains on the CPU, slowly at full size."
    return (
        f"The training kernels ask for {', '.join(sorted(chosen))} with `machine_shape` in kernel-metadata.json "
        "(`--accelerator t4x2|p100|tpu|none` chooses). GPU T4 x2 is two GPUs: each stage trains with "
        "MirroredStrategy, BATCH_SIZE split between them, and in mixed precision (float16 on the T4s' tensor cores; "
        "MIXED_PRECISION=auto). A P100 has no tensor cores, so it trains in float32; the kaggle CLI (2.2.5) calls "
        "it retired and says Kaggle runs such sessions on GPU T4 x2. Without a machine_shape, Kaggle has given "
        "pushed kernels a P100, on which parts of today's image fail. TPU v5e-8 (a separate weekly quota) is for "
        "runs that outgrow two T4s, such as the external images at 512 px: its kernels run Keras on JAX "
        "(KERAS_BACKEND=jax), DataParallel over the 8 chips in bfloat16, BATCH_SIZE a multiple of 8."
    )


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise errors.ExistsError(f"{out} exists and is not a folder; nothing was touched. Choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise errors.ExistsError(
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
    atomic_files.write_json(folder / MARKER, marker)


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

    ``out/<stage>/`` holds each notebook (parameters set to the preset's values, DATA_DIR and OUTPUT_DIR left "")
    and its kernel-metadata.json; ``out/hpa-utils/`` is the package as a dataset, with the wheels of imgaug and
    iterative-stratification (from ``wheel_dir``, default <repo>/.whl/, else downloaded with pip). Stages that load
    ImageNet weights get internet; with ``weights_dataset`` ("owner/slug") they stay offline, that dataset is
    attached, and their WEIGHTS become the backbone's "notop" file name, which the kernel finds wherever the dataset
    is mounted. ``accelerator`` (ACCELERATORS, default t4x2) is the machine the training kernels ask for
    (``machine_shape``). ``fold_kernels``: 04 becomes one kernel per fold (``<out>/04_kfold_fold_<k>/``,
    FOLDS=[k]) and a merge kernel (``<out>/04_kfold/``) that reads their outputs, so that no kernel holds all
    folds' training time. ``preset`` is a preset name or YAML file; ``notebooks_dir`` defaults to the
    repository's notebooks/. Raises ValueError for a bad user name or preset, FileExistsError for an ``out`` that
    holds anything but an earlier export (a re-export replaces an earlier one whole), RuntimeError when a wheel
    can be neither found nor downloaded.
    """
    account = Account(user, public=public, weights_dataset=weights_dataset, accelerator=accelerator)
    preset_record = parameters.load_preset(preset)
    out = Path(out).expanduser().resolve()
    _check_out(out)
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else parameters.NOTEBOOKS_DIR
    notebooks = {stage: Notebook.read(notebooks_dir / f"{stage}.ipynb") for stage in preset_record["notebooks"]}
    parameters.check_names(preset_record, {}, {stage: notebook.declared for stage, notebook in notebooks.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        rows = [
            write_kernel(staging / kernel.folder, notebook, kernel, account=account, preset=preset_record)
            for stage, notebook in notebooks.items()
            for kernel in kernels(stage, notebook, preset_record, fold_kernels)
        ]
        write_package_dataset(staging / DATASET_SLUG, user, wheel_dir)
        _write_guide_and_marker(staging, user, preset_record, rows)
        _check_out(out)  # still safe to replace (nothing appeared there meanwhile)
        _replace_folder(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils kaggle-export`."""
    path = export(
        arguments.user,
        arguments.out,
        public=arguments.public,
        preset=arguments.preset,
        weights_dataset=arguments.weights_dataset,
        wheel_dir=arguments.wheel_dir,
        accelerator=arguments.accelerator,
        fold_kernels=arguments.fold_kernels,
    )
    print(f"wrote {path}\n{describe(path)}\nnext: {path / 'UPLOAD.md'} (what to push, in order)")
    return 0

"""The Kaggle export: every notebook as a kernel folder (``kaggle_kernels``), the hpa_utils package as the dataset
they import, UPLOAD.md (from ``data/upload.md``) saying what to push in order, and the export's table."""

from __future__ import annotations

import shutil
import string
import tempfile
from pathlib import Path

from hpa_utils import atomic_files, environment, kaggle_package, parameters, stages
from hpa_utils.kaggle_kernels import (
    ACCELERATORS,
    DATASET_SLUG,
    DEFAULT_ACCELERATOR,
    METADATA_FILE,
    Account,
    Notebook,
    kernels,
    write_kernel,
)

MARKER = ".hpa-kaggle-export"  # marks a folder this module wrote, so a re-export may replace it
UPLOAD_TEMPLATE = Path(__file__).with_name("data") / "upload.md"

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
        kaggle_package.write_package_dataset(staging / DATASET_SLUG, user, wheel_dir)
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

"""Where the bundle runs: Kaggle or not, the repository and its commit, the CPU, Kaggle's input and working folders,
and what is mounted.

Kaggle has moved its mounts over the years: today /kaggle/input/competitions/<slug>/,
/kaggle/input/datasets/<owner>/<slug>/ and /kaggle/input/notebooks/<owner>/<kernel>/, earlier
/kaggle/input/<slug>/ for all three. So an input is found by what its folder holds, at any depth up
to ``MAX_DEPTH``, never by one guessed path. The input root is read from ``HPA_KAGGLE_INPUT``
(default /kaggle/input), so a test can simulate Kaggle anywhere; the notebooks' first cell reads the
same variable to find this package.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from hpa_utils import errors

REPO_ROOT = Path(__file__).resolve().parents[2]  # the repository, or the hpa-utils dataset on Kaggle
KAGGLE_SWITCH = "KAGGLE_KERNEL_RUN_TYPE"  # set by Kaggle in every kernel (Interactive or Batch)
INPUT_ROOT_VARIABLE = "HPA_KAGGLE_INPUT"
CPU_REPLICAS_VARIABLE = "HPA_CPU_REPLICAS"  # N > 1: the CPU split into N replicas, as if it had N GPUs (tests)
DEFAULT_KAGGLE_INPUT = "/kaggle/input"
COMPETITION = "human-protein-atlas-image-classification"
PACKAGE_DATASET = "hpa-utils"  # the slug of the dataset that carries this package
KAGGLE_SESSION_HOURS = 12.0  # a GPU session's limit: "the maximum notebook runtime", as the kaggle CLI 2.2.5 says
KAGGLE_MARGIN_HOURS = 0.5  # kept free at the end for predicting, writing the outputs and saving the version
MAX_DEPTH = 5  # /kaggle/input/notebooks/<owner>/<kernel>/<stage> is 4 deep; one more for a nested upload
MAX_FILE_DEPTH = 10  # a weights file may sit deep inside a dataset of pretrained models
TRAIN_CSV, SAMPLE_SUBMISSION_CSV = "train.csv", "sample_submission.csv"
DATA_FILES = (TRAIN_CSV, SAMPLE_SUBMISSION_CSV)  # with train/: a competition data folder
IMAGE_FOLDERS = ("train", "test")
MOUNT_LISTING_LIMIT = 40


class InputNotFoundError(errors.MissingError):
    """Something a kernel needs is not among its inputs; the message says what to attach and lists what is mounted."""


def is_kaggle() -> bool:
    """Whether this runs inside a Kaggle kernel (the project's one Kaggle switch)."""
    return bool(os.environ.get(KAGGLE_SWITCH))


def cpu_replicas() -> int:
    """``$HPA_CPU_REPLICAS``: into how many replicas to split the CPU (1 when unset). ValueError unless a whole >= 1."""
    value = os.environ.get(CPU_REPLICAS_VARIABLE, "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise errors.InputError(f"{CPU_REPLICAS_VARIABLE}={value!r}: expected a whole number of replicas, 1 or more")
    return int(value)


def kaggle_input() -> Path:
    """Kaggle's input root: /kaggle/input, or ``$HPA_KAGGLE_INPUT`` where a test simulates Kaggle."""
    return Path(os.environ.get(INPUT_ROOT_VARIABLE) or DEFAULT_KAGGLE_INPUT)


def kaggle_working() -> Path:
    """Kaggle's output folder, /kaggle/working: the sibling of the input root."""
    return kaggle_input().parent / "working"


def _walk(root: Path, max_depth: int):
    """(folder, depth, entry names, subfolder names) of every folder below ``root`` down to ``max_depth``.

    Hidden folders and ``__pycache__`` are skipped, and so are the image folders of a competition data
    folder: its train/ and test/ hold a hundred thousand images and nothing a search looks for.
    """
    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        names = {entry.name for entry in entries}
        subfolders = sorted(entry.name for entry in entries if _is_folder(entry))
        yield folder, depth, names, subfolders
        if depth < max_depth:
            skipped = IMAGE_FOLDERS if set(DATA_FILES) <= names else ()
            pending += [
                (folder / name, depth + 1)
                for name in reversed(subfolders)
                if not name.startswith(".") and name != "__pycache__" and name not in skipped
            ]


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def is_competition_data(folder: Path, names=None) -> bool:
    """Whether ``folder`` holds train.csv, sample_submission.csv and train/ (the Kaggle layout)."""
    names = names if names is not None else set(os.listdir(folder))
    return set(DATA_FILES) <= names and (folder / "train").is_dir()


def mounted(root: Path | None = None, levels: int = 2) -> str:
    """What is mounted under the input root, ``levels`` deep, as an indented tree (for error messages)."""
    root = root or kaggle_input()
    if not root.is_dir():
        return f"{root} does not exist"
    lines = []

    def add(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            folder_entry = _is_folder(entry)
            lines.append("  " * (depth + 1) + entry.name + ("/" if folder_entry else ""))
            if folder_entry and depth + 1 < levels and len(lines) <= MOUNT_LISTING_LIMIT:
                add(Path(entry.path), depth + 1)

    add(root, 0)
    if not lines:
        return f"{root} is empty"
    shown = lines[:MOUNT_LISTING_LIMIT]
    if len(lines) > len(shown):
        shown.append(f"  ... and {len(lines) - len(shown)} more")
    return f"{root} holds:\n" + "\n".join(shown)


def find_competition_data(root: Path | None = None) -> Path:
    """The competition data folder under the input root, in any mount layout.

    Where several folders have the Kaggle layout, the one named after the competition wins; raises
    InputNotFoundError when there is none (or several and none is named so), listing what is mounted.
    """
    root = root or kaggle_input()
    found = [folder for folder, _, names, _ in _walk(root, MAX_DEPTH) if is_competition_data(folder, names)]
    named = [folder for folder in found if COMPETITION in folder.parts]
    if len(found) == 1 or len(named) == 1:
        return (named or found)[0]
    if found:
        raise InputNotFoundError(
            f"several folders under {root} look like competition data: {', '.join(map(str, found))}. "
            f"Set DATA_DIR to the one to use."
        )
    raise InputNotFoundError(
        f"no competition data under {root} (a folder holding {', '.join(DATA_FILES)} and train/). Add the "
        f"competition to this notebook (Add Input > Competitions > {COMPETITION}; kernel-metadata.json: "
        f"competition_sources), or set DATA_DIR.\n{mounted(root)}"
    )


def find_stage_outputs(stage: str, required: str, root: Path | None = None) -> list[Path]:
    """Folders named ``stage`` holding ``required`` under the input root (upstream kernel outputs), shallowest first."""
    root = root or kaggle_input()
    found = [
        (depth, folder)
        for folder, depth, names, _ in _walk(root, MAX_DEPTH)
        if folder.name == stage and required in names and (folder / required).is_file()
    ]
    return [folder for _, folder in sorted(found)]


def find_file(name: str, root: Path | None = None) -> Path | None:
    """The first file called ``name`` under the input root (shallowest, then by path), or None."""
    root = root or kaggle_input()
    found = sorted(
        (depth, folder / name)
        for folder, depth, names, _ in _walk(root, MAX_FILE_DEPTH)
        if name in names and (folder / name).is_file()
    )
    return found[0][1] if found else None


def resolve_input_file(value: str, what: str) -> Path:
    """``value`` as a file: as given when it exists, else (on Kaggle) the file of that name under the input root.

    A weights file named "resnet50_..._notop.h5" is found wherever its dataset is mounted. Raises
    InputNotFoundError (on Kaggle: with what is mounted) or FileNotFoundError naming ``what``.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if is_kaggle():
        found = find_file(path.name)
        if found is not None:
            return found
        raise InputNotFoundError(
            f"{what} {value!r}: no such file, and no file named {path.name} under {kaggle_input()}. Add the dataset "
            f"that holds it to this notebook (kernel-metadata.json: dataset_sources).\n{mounted()}"
        )
    raise errors.MissingError(f"{what} {value!r}: no such file")


BACKENDS = ("tensorflow", "jax")  # KERAS_BACKEND: TensorFlow (GPUs, the default) or JAX (Kaggle's TPU v5e-8)
JAX_CACHE = "hpa-jax-cache"  # JAX's persistent compilation cache, a folder in the temporary folder


def choose_backend(backend: str) -> str:
    """Set Keras' backend for this process (``KERAS_BACKEND``, which Keras reads once, when it is first imported);
    "" keeps the environment's, else TensorFlow. Under JAX, compiled steps are kept on disk (JAX's persistent
    compilation cache, ``JAX_COMPILATION_CACHE_DIR`` unless set): 04's folds after the first skip XLA's compilation.
    Returns the backend. Raises ValueError for an unknown name, and RuntimeError when Keras already runs another
    backend (restart the kernel)."""
    chosen = backend or os.environ.get("KERAS_BACKEND") or BACKENDS[0]
    if chosen not in BACKENDS:
        raise errors.InputError(f"KERAS_BACKEND={chosen!r} is not supported; choose one of {', '.join(BACKENDS)}")
    running = sys.modules.get("keras")
    if running is not None and running.backend.backend() != chosen:
        raise errors.SetupError(
            f"KERAS_BACKEND={chosen}, but Keras already runs on {running.backend.backend()}: set it before anything "
            "imports Keras (restart the kernel and run the cells from the top)"
        )
    os.environ["KERAS_BACKEND"] = chosen
    if chosen == "jax":  # read when JAX is first imported
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / JAX_CACHE))
    return chosen


def cpu_description() -> str:
    """The CPU's model name, its cores and, where Linux tells, whether it has AVX-512 (TensorFlow's CPU kernels, and so
    a CPU run's figures, depend on it): "AMD EPYC 9B14, 2 cores, AVX-512"; the platform's name elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lines = text.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    avx512 = "AVX-512" if " avx512f" in text else "no AVX-512"
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores, {avx512}"


def commit() -> str:
    """The repository's commit (short), or "" where there is none (the hpa-utils dataset on Kaggle, no git)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError:
        return ""
    return found.stdout.strip() if found.returncode == 0 else ""

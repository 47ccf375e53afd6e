"""Faults a real run meets, made to happen for real on smoke runs: a full disk, a dead kernel, a device out of memory.

Each must end in one clear line on the console (no traceback there; the full one in the stage's log), keep what
finished, leave no half-written file under a final name, and let `run --resume` finish once the cause is gone.
"""

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpa_utils import stages
from hpa_utils.stages import parameters
from hpa_utils.system import environment, memory

# slow: each test runs part of the smoke pipeline through papermill, fails it, and resumes it (1-2 minutes each)
pytestmark = pytest.mark.integration
REPO = environment.REPO_ROOT
RESUME = "python -m hpa_utils run --resume"
# TensorFlow's own allocator limit (its BFC allocator on the CPU, oneDNN's kernels off: they do not report a failed
# allocation), for a device out of memory on a CPU
ALLOCATOR_LIMIT = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPU_BFC_MEM_LIMIT_IN_MB": "68"}


def first_two_stages(folder: Path) -> str:
    """The smoke preset cut to 00 and 01 (a resumed run finishes the preset's notebooks: these two), its path."""
    preset = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    preset["notebooks"] = list(stages.STAGES[:2])
    declared = set(parameters.declared("00_eda")) | set(parameters.declared("01_baseline"))
    preset["parameters"] = {name: value for name, value in preset["parameters"].items() if name in declared}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "first-two.yaml").write_text(yaml.safe_dump(preset))
    return str(folder / "first-two.yaml")


def runner(*arguments, environment_variables=None, preexec_fn=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "hpa_utils", "run", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(environment_variables or {})},
        preexec_fn=preexec_fn,
    )


def one_line_error(result) -> str:
    """The run's one error line; fails on a traceback anywhere on the console or on more than one error line."""
    console = result.stdout + result.stderr
    assert result.returncode == 1, console[-3000:]
    assert "Traceback" not in console, console[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def fingerprint(folder: Path) -> dict:
    return {
        str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def no_half_written_files(run_dir: Path) -> None:
    assert not [path for path in run_dir.rglob("*") if ".tmp" in path.name], "a temporary file was left behind"
    for notebook in run_dir.glob("*.ipynb"):
        json.loads(notebook.read_text())  # an executed notebook under its name is whole


@contextlib.contextmanager
def small_disk(folder: Path, megabytes: int):
    """A filesystem of ``megabytes`` at ``folder`` (tmpfs; the tests run as root here, as in CI), yielding a function
    that grows it: freeing space the way a user would."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)])
    if mounted.returncode:
        pytest.skip("mounting a small tmpfs needs root")  # test_a_file_size_limit_... makes the same fault without
    try:
        yield lambda size: subprocess.run(["mount", "-o", f"remount,size={size}m", str(folder)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(folder)])


def test_a_full_run_folder_stops_the_stage_in_one_line_and_the_run_resumes_once_space_is_freed(tmp_path):
    with small_disk(tmp_path / "disk", megabytes=8) as grow:  # 00 fits (6 MB of notebook), 01's weights do not
        run_dir = tmp_path / "disk" / "run"
        result = runner("--preset", first_two_stages(tmp_path / "presets"), "--out", str(run_dir))
        line = one_line_error(result)
        assert line.startswith(f"error: 01_baseline stopped: the disk holding {run_dir}")
        assert "ran out of space (" in line and "01_baseline writes about" in line and f"{RESUME} {run_dir}" in line
        assert "report.html not written: the disk holding" in result.stderr or (run_dir / "report.html").is_file()
        assert stages.is_finished(run_dir / "00_eda") and not stages.is_finished(run_dir / "01_baseline")
        no_half_written_files(run_dir)
        assert "No space left on device" in (run_dir / "01_baseline.log").read_text()  # the full traceback
        finished = fingerprint(run_dir / "00_eda")
        grow(300)
        resumed = runner("--resume", str(run_dir))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert all(stages.is_finished(run_dir / stage) for stage in stages.STAGES[:2])
        assert fingerprint(run_dir / "00_eda") == finished


def test_a_disk_full_before_the_first_notebook_is_saved_gets_one_line_and_no_report_traceback(tmp_path):
    with small_disk(tmp_path / "disk", megabytes=2):  # the issue's case: 00's executed notebook does not fit
        run_dir = tmp_path / "disk" / "run"
        result = runner("--preset", "smoke", "--out", str(run_dir), "--only", "00")
        line = one_line_error(result)
        assert line.startswith(f"error: 00_eda stopped: the disk holding {run_dir} ran out of space")
        assert "00_eda writes about 6.0 MB there" in line
        assert "report.html not written: the disk holding" in result.stderr or (run_dir / "report.html").is_file()
        no_half_written_files(run_dir)


def test_a_file_size_limit_is_a_full_disk_too(tmp_path):
    def limit_files():  # in the runner and its kernel: a write past 1 MB fails (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    result = runner("--preset", "smoke", "--out", str(tmp_path / "run"), "--only", "00", preexec_fn=limit_files)
    line = one_line_error(result)
    assert line.startswith("error: 00_eda stopped: the disk holding") and f"{RESUME} {tmp_path / 'run'}" in line
    no_half_written_files(tmp_path / "run")


def test_a_command_beside_the_runner_that_fills_the_disk_gets_one_line_too(tmp_path):
    def limit_files():  # the embedded dataset's first image file is larger than 2 kB
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    command = [sys.executable, "-m", "hpa_utils", "synth", "--out", str(tmp_path / "data"), "--size", "64"]
    result = subprocess.run(
        [*command, "--train", "4", "--test", "2", "--workers", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_files,
    )
    line = one_line_error(result)  # no file named: the folder it ran in
    assert line.startswith(f"error: the disk holding {REPO} ran out of space (")
    assert line.endswith(" free now): [Errno 27] File too large")
    assert list(tmp_path.iterdir()) == []  # the dataset is written beside its folder, renamed in at the end


def kernel_of(pid: int) -> int | None:
    for child in memory.descendants(pid):
        try:
            if b"ipykernel" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


def test_a_dead_kernel_names_the_stage_its_last_cell_its_memory_and_the_resume(tmp_path):
    run_dir = tmp_path / "run"
    preset = first_two_stages(tmp_path / "presets")
    process = subprocess.Popen(
        [sys.executable, "-m", "hpa_utils", "run", "--preset", preset, "--out", str(run_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not (run_dir / "01_baseline" / stages.SPLIT_FILE).is_file() and time.time() < deadline:
        time.sleep(0.2)
    kernel = kernel_of(process.pid)
    assert kernel is not None, "01's kernel is running"
    os.kill(kernel, signal.SIGKILL)  # as the out-of-memory killer does
    stdout, stderr = process.communicate(timeout=300)
    line = one_line_error(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    assert line.startswith("error: 01_baseline stopped: the notebook's kernel died during cell ")
    assert "its peak memory was at least" in line and "Likely cause: memory" in line
    assert f"{RESUME} {run_dir}" in line
    finished = fingerprint(run_dir / "00_eda")
    resumed = runner("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert fingerprint(run_dir / "00_eda") == finished and stages.is_finished(run_dir / "01_baseline")


def test_a_device_out_of_memory_names_the_batch_to_try_and_keeps_the_finished_epochs(tmp_path, smoke_upstream):
    # under ALLOCATOR_LIMIT 02's warm-up (the head alone) fits, its fine-tuning (every layer) does not
    run_dir = smoke_upstream(tmp_path / "run")
    result = runner("--resume", str(run_dir), "--only", "02", environment_variables=ALLOCATOR_LIMIT)
    line = one_line_error(result)
    assert line.startswith("error: 02_warmup_finetune stopped: out of memory on the CPU")
    assert "training at 32 px with 16 images per replica" in line and "try BATCH_SIZE=8 or less" in line
    checkpoint = run_dir / "02_warmup_finetune" / "best.weights.h5"
    assert f"the best epoch so far is kept in {checkpoint}" in line and checkpoint.is_file()
    assert f"{RESUME} {run_dir}" in line
    assert "ResourceExhaustedError" in (run_dir / "02_warmup_finetune.log").read_text()  # the full traceback
    assert stages.is_finished(run_dir / "01_baseline") and not stages.is_finished(run_dir / "02_warmup_finetune")


# Prediction out of memory, on 2 CPU replicas under the same allocator limit: 8 views of 64 images at 128 px in one
# call do not fit, and the line counts the images each replica got and halves the batch the replicas share.
PREDICTION_SCRIPT = """
import numpy as np
from hpa_utils.system import hardware
from hpa_utils import models
from hpa_utils.results import predict
machine = hardware.prepare("off", batch_size=64)
with machine.scope():
    model = models.build_model("small", 128, "rgby", "none", dropout=0.1)
try:
    predict.predict_tta(model, np.zeros((64, 128, 128, 4), np.uint8), views=8, batch_size=64, progress=False)
except hardware.AcceleratorMemoryError as error:
    print(error)
"""


def test_prediction_out_of_memory_counts_each_replicas_images():
    result = subprocess.run(
        [sys.executable, "-c", PREDICTION_SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **ALLOCATOR_LIMIT, environment.CPU_REPLICAS_VARIABLE: "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == (
        "out of memory on the CPU ("
        + f"{memory.total_bytes() / 1e9:.0f} GB of RAM) predicting (8 views of each image in one call) at 128 px "
        "with 32 images per replica (a batch of 64 over 2 replicas): try BATCH_SIZE=32 or less"
    )


@pytest.fixture(scope="module")
def smoke_upstream(tmp_path_factory):
    """A function copying a smoke run of 01 (made once) to a new run folder."""
    made = tmp_path_factory.mktemp("upstream") / "run"
    result = runner("--preset", "smoke", "--out", str(made), "--only", "01")
    assert result.returncode == 0, result.stderr[-3000:]

    def copy(target: Path) -> Path:
        shutil.copytree(made, target)
        return target

    return copy

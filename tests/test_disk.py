"""Disk space: the full-disk errors recognised, the folder named, a stage's need estimated, warnings before it."""

import dataclasses
import errno

from hpa_utils.pipeline import stage_space
from hpa_utils.stages.stage_config import StageConfig
from hpa_utils.system import disk


def test_full_disk_errors_are_recognised_wherever_they_come_from():
    assert disk.is_full_disk(OSError(errno.ENOSPC, "No space left on device", "/run/x/model.h5"))
    assert disk.is_full_disk(OSError(errno.EFBIG, "File too large"))  # a file-size limit
    kernel_text = "[Errno 28] No space left on device: '/data/run/01_baseline/best.weights.h5'"
    assert disk.is_full_disk(kernel_text) and str(disk.path_in(kernel_text)) == "/data/run/01_baseline/best.weights.h5"
    h5py_text = (
        "Unable to synchronously write data (file write failed: errno = 28, error message = 'No space left on device')"
    )
    assert disk.is_full_disk(h5py_text) and disk.path_in(h5py_text) is None
    assert not disk.is_full_disk(OSError(errno.EACCES, "Permission denied"))
    assert disk.path_in(OSError(errno.ENOSPC, "No space left on device", "/a/b.npy")).name == "b.npy"


def test_the_line_names_the_folder_its_free_space_and_the_stages_need(tmp_path):
    line = disk.full_disk_line("02_warmup_finetune", tmp_path, 14_100_000)
    assert line.startswith(f"02_warmup_finetune stopped: the disk holding {tmp_path} ran out of space (")
    assert line.endswith("free now; 02_warmup_finetune writes about 14 MB there)")
    assert [disk.describe(size) for size in (740e3, 14.1e6, 3.4e9, 25e9)] == ["740 KB", "14 MB", "3.4 GB", "25 GB"]


def test_a_stage_that_will_not_fit_is_warned_of_before_it_starts(tmp_path):
    full = StageConfig.from_values("04_kfold", {"BACKBONE": "resnet50", "IMAGE_SIZE": 512, "N_FOLDS": 5})
    counts = (1_000_000_000, 2_000_000)  # far more than this disk holds: the stage's files and its cache
    cache_dir = tmp_path / "cache"
    warnings = stage_space.space_warnings(full, run_dir=tmp_path, cache_dir=cache_dir, counts=counts)
    assert len(warnings) == 2 and warnings[0].startswith("04_kfold writes about ") and "into " in warnings[0]
    assert "image cache needs about" in warnings[1] and "decodes the images on the fly" in warnings[1]
    streamed = stage_space.space_warnings(
        dataclasses.replace(full, cache="stream"), run_dir=tmp_path, cache_dir=tmp_path, counts=counts
    )
    assert len(streamed) == 1  # nothing cached
    small = StageConfig.from_values("01_baseline", {"BACKBONE": "small", "IMAGE_SIZE": 32, "CHANNELS": "rgb"})
    assert stage_space.space_warnings(small, run_dir=tmp_path, cache_dir=tmp_path, counts=(64, 16)) == []


def test_on_kaggle_the_working_folders_20_gb_are_the_limit(tmp_path):
    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "model.h5").write_bytes(b"0" * 1000)
    full = StageConfig.from_values("04_kfold", {"BACKBONE": "resnet50", "IMAGE_SIZE": 512, "CACHE": "stream"})
    counts = (50_000_000, 20_000_000)  # 04's predictions alone: over 20 GB, more than Kaggle keeps
    warnings = stage_space.space_warnings(
        full, run_dir=tmp_path, cache_dir=tmp_path, counts=counts, kaggle_working=tmp_path
    )
    assert any("Kaggle keeps at most 20 GB of a kernel's output" in warning for warning in warnings)

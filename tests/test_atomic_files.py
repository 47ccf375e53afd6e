"""Tests of hpa_utils.files: atomic writes (an error or an interrupt leaves the old file) and the JSON helpers."""

import json
import os

import numpy as np
import pytest

from hpa_utils import errors
from hpa_utils.stages import stage_files
from hpa_utils.system import atomic_files


def listing(folder):
    """The names in ``folder``: an atomic write leaves no temporary file behind."""
    return sorted(os.listdir(folder))


def test_atomic_write_renames_the_temporary_file_over_the_target(tmp_path):
    target = tmp_path / "deep" / "er" / "notes.txt"
    with atomic_files.atomic_write(target) as temporary:
        assert temporary.parent == target.parent and temporary != target
        assert not target.exists()  # nothing at the target until the block succeeds
        temporary.write_text("new")
    assert target.read_text() == "new"
    assert listing(target.parent) == ["notes.txt"]


def test_atomic_write_replaces_an_existing_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("old")
    with atomic_files.atomic_write(target) as temporary:
        temporary.write_text("new")
        assert target.read_text() == "old"  # readers see the old file while the new one is written
    assert target.read_text() == "new"
    assert listing(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize(
    "interruption", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["exception", "keyboard_interrupt"]
)
def test_an_interrupted_write_leaves_the_old_file_untouched(tmp_path, interruption):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}\n')
    before = target.stat().st_mtime_ns
    with pytest.raises(type(interruption)):
        with atomic_files.atomic_write(target) as temporary:
            temporary.write_text('{"half": ')
            raise interruption
    assert target.read_text() == '{"old": true}\n'
    assert target.stat().st_mtime_ns == before
    assert listing(tmp_path) == ["metrics.json"]


def test_an_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_files.atomic_write(tmp_path / "model.h5") as temporary:
            temporary.write_bytes(b"\x89HDF")
            raise KeyboardInterrupt
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "name, suffix",
    [("best.weights.h5", ".weights.h5"), ("oof.npy", ".npy"), ("model.h5", ".h5"), ("submission.csv", ".csv")],
)
def test_temporary_name_keeps_the_suffix_and_is_hidden(tmp_path, name, suffix):
    with atomic_files.atomic_write(tmp_path / name) as temporary:
        assert temporary.name.endswith(suffix), temporary.name
        assert temporary.name.startswith(".") and temporary.name != f".{name}"
        temporary.write_bytes(b"x")
    assert listing(tmp_path) == [name]


def test_np_save_through_atomic_write_does_not_add_a_second_suffix(tmp_path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    with atomic_files.atomic_write(tmp_path / "oof.npy") as temporary:
        np.save(temporary, array)  # np.save appends .npy unless the name already ends in it
    assert listing(tmp_path) == ["oof.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "oof.npy"), array)


# --- the writers a run relies on --------------------------------------------------------------


class Unpicklable:
    """An object np.save cannot store: it fails after the .npy header is written."""

    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_save_array_failing_midway_keeps_the_old_array(tmp_path):
    path = stage_files.save_array(tmp_path / "test_pred.npy", np.ones((2, 28), np.float32))
    unpicklable = np.array([Unpicklable()], dtype=object)
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        stage_files.save_array(path, unpicklable)
    np.testing.assert_array_equal(np.load(path), np.ones((2, 28), np.float32))
    assert listing(tmp_path) == ["test_pred.npy"]


def test_write_metrics_failing_keeps_the_old_metrics(tmp_path):
    stage_files.write_metrics(tmp_path, {"f1_at_0.5": 0.25})
    with pytest.raises(TypeError, match="metrics.json: cannot write this value as JSON"):
        stage_files.write_metrics(tmp_path, {"f1_at_0.5": object()})
    assert stage_files.read_metrics(tmp_path) == {"f1_at_0.5": 0.25}
    assert listing(tmp_path) == ["metrics.json"]


def test_save_thresholds_writes_json_atomically(tmp_path):
    report = {"best_global_threshold": 0.3, "per_class_thresholds": [0.5] * 28}
    path = stage_files.save_thresholds(tmp_path, report)
    written = atomic_files.read_json(path)
    assert written["global"] == 0.3 and written["per_class"] == [0.5] * 28
    assert written["classes"]["0 Nucleoplasm"] == 0.5
    assert listing(tmp_path) == ["thresholds.json"]


# --- JSON helpers --------------------------------------------------------------------------------


def test_write_json_and_read_json_round_trip(tmp_path):
    value = {"stage": "01_baseline", "per_class_f1": [0.5, 0.25], "nested": {"a": None}}
    path = atomic_files.write_json(tmp_path / "run.json", value)
    assert atomic_files.read_json(path) == value
    assert path.read_text().endswith("\n")


def test_read_json_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(errors.MissingError, match=f"{tmp_path / 'missing.json'}: file not found"):
        atomic_files.read_json(tmp_path / "missing.json")


@pytest.mark.parametrize("content", ['{"half": ', "", "not json"], ids=["truncated", "empty", "text"])
def test_read_json_of_a_broken_file_names_it(tmp_path, content):
    path = tmp_path / "metrics.json"
    path.write_text(content)
    with pytest.raises(errors.InputError, match=f"{path}: not valid JSON") as caught:
        atomic_files.read_json(path)
    assert "line 1" in str(caught.value)  # json's position of the problem


def test_read_json_of_a_file_that_is_not_utf8_names_it(tmp_path):
    path = tmp_path / "run.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(errors.InputError, match=f"{path}: not valid JSON"):
        atomic_files.read_json(path)


def circular():
    value = {}
    value["self"] = value
    return value


@pytest.mark.parametrize(
    "value, error, detail",
    [({"when": object()}, TypeError, "not JSON serializable"), (circular(), ValueError, "Circular reference")],
    ids=["unserialisable", "circular"],
)
def test_write_json_of_a_value_json_cannot_hold_names_the_file_and_keeps_the_old_one(tmp_path, value, error, detail):
    path = atomic_files.write_json(tmp_path / "run.json", {"ok": 1})
    with pytest.raises(error, match=f"{path}: cannot write this value as JSON .*{detail}"):
        atomic_files.write_json(path, value)
    assert json.loads(path.read_text()) == {"ok": 1}
    assert listing(tmp_path) == ["run.json"]

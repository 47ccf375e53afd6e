"""The runner's fast parts: presets, parameter checks, stage selection, the run folder."""

import os
from pathlib import Path

import pytest

from hpa_utils import cli, errors
from hpa_utils.pipeline import runner
from hpa_utils.stages import parameters


def test_every_preset_loads():
    for name in ("smoke", "demo", "full"):
        preset = parameters.load_preset(name)
        assert preset["name"] == name and preset["parameters"]


def test_unknown_preset_names_the_available_ones():
    with pytest.raises(errors.InputError, match=r"preset 'nope' not found.*available presets: demo, full, smoke"):
        parameters.load_preset("nope")


def test_preset_file_with_a_typo_is_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("parameters:\n  IMAGE_SIZ: 64\n")
    with pytest.raises(errors.InputError, match="IMAGE_SIZ, which no notebook declares"):
        parameters.check_names(
            parameters.load_preset(str(path)),
            {},
            {stage: parameters.declared(stage) for stage in ("00_eda", "01_baseline")},
        )
    path.write_text("parameters: [1, 2]\n")
    with pytest.raises(errors.InputError, match="mine.yaml: expected a mapping"):
        parameters.load_preset(str(path))


def test_parameter_of_the_wrong_type_names_parameter_stage_and_source():
    preset = parameters.load_preset("smoke")
    with pytest.raises(
        errors.InputError,
        match=r"parameter SYNTHETIC_TRAIN of 00_eda expects int, got 'many' \(str\) "
        r"from the command line",
    ):
        runner.stage_parameters(preset, {"SYNTHETIC_TRAIN": "many"}, "00_eda", Path("/tmp/x"), None)
    with pytest.raises(errors.InputError, match="expects int, got True"):
        runner.stage_parameters(preset, {"SYNTHETIC_TRAIN": True}, "00_eda", Path("/tmp/x"), None)


def test_overrides_are_read_as_yaml():
    assert parameters.parse_overrides(["FOLDS=[0, 1]", "EPOCHS=2", "NAME=abc", "RATE=0.5", "SMALL=1e-4", "W=none"]) == {
        "FOLDS": [0, 1],
        "EPOCHS": 2,
        "NAME": "abc",
        "RATE": 0.5,
        "SMALL": 0.0001,
        "W": "none",
    }
    with pytest.raises(errors.InputError, match="expected NAME=VALUE"):
        parameters.parse_overrides(["EPOCHS"])


def test_on_and_off_stay_text_in_overrides_and_presets(tmp_path):
    """YAML 1.2's booleans: MIXED_PRECISION=on is the text a str parameter expects; true and false are booleans."""
    overrides = ["MIXED_PRECISION=on", "A=off", "B=yes", "C=no", "D=true", "E=False"]
    assert parameters.parse_overrides(overrides) == {
        "MIXED_PRECISION": "on",
        "A": "off",
        "B": "yes",
        "C": "no",
        "D": True,
        "E": False,
    }
    (tmp_path / "mixed.yaml").write_text(
        "parameters:\n  MIXED_PRECISION: on\nstages:\n  03_upscale:\n    MIXED_PRECISION: off\n"
    )
    preset = parameters.load_preset(str(tmp_path / "mixed.yaml"))
    assert (
        preset["parameters"]["MIXED_PRECISION"] == "on" and preset["stages"]["03_upscale"]["MIXED_PRECISION"] == "off"
    )
    values = runner.stage_parameters(preset, {}, "03_upscale", tmp_path / "run", None)
    assert values["MIXED_PRECISION"] == "off"


def test_only_accepts_numbers_and_names_in_pipeline_order():
    notebooks = ["00_eda", "01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"]
    assert runner.select_stages(notebooks, ["04", "01_baseline"]) == ["01_baseline", "04_kfold"]
    with pytest.raises(errors.InputError, match="--only 07: no such stage"):
        runner.select_stages(notebooks, ["07"])


def test_existing_out_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(errors.ExistsError, match="already exists and is not empty; nothing was touched"):
        runner.new_run_dir(str(tmp_path), "demo")
    assert (tmp_path / "keep.txt").read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    with pytest.raises(errors.NotWritableError, match="cannot write there"):
        runner.new_run_dir(str(tmp_path / "run"), "demo")


def test_unwritable_out_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(errors.NotWritableError, match="cannot write there"):
        runner.new_run_dir(str(tmp_path / "file" / "run"), "demo")


def test_cli_reports_bad_preset_without_traceback(capsys):
    assert cli.main(["run", "--preset", "nope", "--out", "/tmp/never-made"]) == 2
    assert "error: preset 'nope' not found" in capsys.readouterr().err
    assert not Path("/tmp/never-made").exists()


def test_cli_a_librarys_error_is_not_read_as_bad_input_its_traceback_goes_to_a_log(capsys, monkeypatch):
    import json

    from hpa_utils.results import comparison

    monkeypatch.setattr(comparison, "main", lambda arguments: json.loads("{not json"))  # the library raises
    assert cli.main(["summary", "anywhere"]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: JSONDecodeError: ") and "not raised by hpa_utils" in line and "\n" not in line
    log = Path(line.rsplit("full traceback: ", 1)[1].rstrip(")"))
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "json/decoder.py" in text and "test_runner.py" in text
    log.unlink()

"""`python -m hpa_utils ablate`: settings, references, the record, and a real ablation of the smoke preset."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from hpa_utils import errors
from hpa_utils.pipeline import ablation
from hpa_utils.results import ablation_tables
from hpa_utils.stages import parameters
from hpa_utils.system import environment

REPO = environment.REPO_ROOT


def test_vary_reads_values_as_yaml_and_refuses_what_it_cannot_vary():
    assert ablation.parse_vary(["AUGMENT=none,dihedral", "WARMUP_EPOCHS=0, 1,3"]) == {
        "AUGMENT": ["none", "dihedral"],
        "WARMUP_EPOCHS": [0, 1, 3],
    }
    with pytest.raises(errors.InputError, match="at least two values"):
        ablation.parse_vary(["AUGMENT=none"])
    with pytest.raises(errors.InputError, match="given twice"):
        ablation.parse_vary(["AUGMENT=none,dihedral", "AUGMENT=strong,none"])
    with pytest.raises(errors.InputError, match="at least one --vary"):
        ablation.parse_vary([])


def test_reference_is_the_presets_value_and_unknown_names_are_refused():
    demo = parameters.load_preset("demo")
    varied = ablation.parse_vary(["AUGMENT=none,dihedral", "CHANNELS=rgb,rgby"])
    reference = ablation.reference_values(demo, "02_warmup_finetune", varied, {})
    assert reference == {"AUGMENT": "dihedral", "CHANNELS": "rgby", "SEED": 0}
    with pytest.raises(errors.InputError, match="01_baseline declares no parameter AUGMENT"):
        ablation.reference_values(demo, "01_baseline", {"AUGMENT": ["none", "dihedral"]}, {})
    with pytest.raises(errors.InputError, match="seeds come from --seeds"):
        ablation.reference_values(demo, "02_warmup_finetune", {"SEED": [0, 1]}, {})
    with pytest.raises(errors.InputError, match="expects int"):
        ablation.reference_values(demo, "02_warmup_finetune", {"WARMUP_EPOCHS": [0, "one"]}, {})


def test_settings_grid_and_one_at_a_time():
    varied = {"AUGMENT": ["none", "dihedral"], "CHANNELS": ["rgb", "rgby"], "WARMUP_EPOCHS": [0, 1]}
    reference = {"AUGMENT": "dihedral", "CHANNELS": "rgby", "WARMUP_EPOCHS": 1, "SEED": 5}
    grid = ablation.settings(varied, reference, seeds=2, one_at_a_time=False)
    assert len(grid) == 16 and {setting.seed for setting in grid} == {5, 6}
    single = ablation.settings(varied, reference, seeds=3, one_at_a_time=True)
    assert len(single) == 12 and len({setting.folder for setting in single}) == 12
    assert single[0].values == (("AUGMENT", "dihedral"), ("CHANNELS", "rgby"), ("WARMUP_EPOCHS", 1))
    changed = [dict(setting.values) for setting in single[3::3]]
    assert changed == [
        {"AUGMENT": "none", "CHANNELS": "rgby", "WARMUP_EPOCHS": 1},
        {"AUGMENT": "dihedral", "CHANNELS": "rgb", "WARMUP_EPOCHS": 1},
        {"AUGMENT": "dihedral", "CHANNELS": "rgby", "WARMUP_EPOCHS": 0},
    ]
    assert single[3].folder == "AUGMENT-none_CHANNELS-rgby_WARMUP_EPOCHS-1_seed-5"


def test_paired_differences_match_runs_on_seed_and_the_other_values():
    table = pd.DataFrame(
        {
            "AUGMENT": ["dihedral", "dihedral", "none", "none"],
            "SEED": [0, 1, 0, 1],
            "f1_at_best_global": [0.30, 0.32, 0.25, 0.31],
            "f1_at_0.5": [0.2] * 4,
            "seconds": [10] * 4,
            "run": ["a", "b", "c", "d"],  # no predictions.npz: no interval over images
        }
    )
    differences = ablation_tables.paired(
        "/nonexistent", "02_warmup_finetune", table, ["AUGMENT"], {"AUGMENT": "dihedral"}
    )
    row = differences.iloc[0]
    assert row["change"] == "AUGMENT: dihedral -> none" and row["pairs"] == 2 and row["better in"] == "0 of 2"
    assert row["mean difference"] == pytest.approx(-0.03) and row["95% over images"] is None
    summary = ablation_tables.per_setting(table, ["AUGMENT"], {"AUGMENT": "dihedral"})
    assert summary["setting"].tolist() == ["reference (AUGMENT=dihedral)", "AUGMENT=none"]
    assert summary["mean"].tolist() == pytest.approx([0.31, 0.28])


def test_an_out_folder_of_another_ablation_is_refused(tmp_path):
    request = {"preset": "smoke", "stage": "02_warmup_finetune", "vary": ["AUGMENT=none,dihedral"], "seeds": 2}
    assert ablation.check_record(tmp_path / "new", request) is False
    (tmp_path / "ablation.json").write_text(json.dumps({**request, "created": "then"}))
    assert ablation.check_record(tmp_path, request) is True
    with pytest.raises(errors.ExistsError, match="holds an ablation of other settings"):
        ablation.check_record(tmp_path, {**request, "seeds": 3})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(errors.ExistsError, match="not a run folder or an ablation"):
        ablation.check_record(tmp_path / "other", request)


def ablate_cli(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "hpa_utils", "ablate", *arguments], cwd=REPO, capture_output=True, text=True, timeout=900
    )


@pytest.mark.integration  # the smoke preset's 01 once, then 02 twice (about 50 s)
def test_ablate_smoke_writes_one_row_per_run_and_resumes_without_rerunning(tmp_path):
    out = tmp_path / "ablation"
    arguments = ["--preset", "smoke", "--stage", "02_warmup_finetune", "--vary", "AUGMENT=none,dihedral"]
    result = ablate_cli(*arguments, "--seeds", "1", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = pd.read_csv(out / "ablation.csv")
    assert len(table) == 2 and sorted(zip(table["AUGMENT"], table["SEED"])) == [("dihedral", 0), ("none", 0)]
    assert (table["ci95_low"] <= table["ci95_high"]).all() and (table["seconds"] > 0).all()
    markdown = (out / "ablation.md").read_text()
    assert "| reference (AUGMENT=dihedral) | 1 |" in markdown and "| AUGMENT: dihedral -> none | 1 |" in markdown
    assert "Ablation of 02_warmup_finetune" in (out / "report.html").read_text()
    assert not any(
        line.startswith(("I0000", "E0000", "W0000")) for line in (result.stdout + result.stderr).splitlines()
    )
    finished = {path: path.stat().st_mtime_ns for path in out.glob("**/metrics.json")}
    assert len(finished) == 3  # 01 once, shared; 02 twice

    again = ablate_cli("--resume", str(out))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in out.glob("**/metrics.json")} == finished
    assert pd.read_csv(out / "ablation.csv").equals(table)

    other = ablate_cli(*arguments, "--seeds", "2", "--out", str(out))
    assert other.returncode == 2 and "holds an ablation of other settings" in other.stderr

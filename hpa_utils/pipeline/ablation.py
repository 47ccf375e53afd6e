"""Ablations through papermill: one stage run for every setting and seed, its upstream stages run once and shared.

``python -m hpa_utils ablate --preset demo --stage 02_warmup_finetune --vary AUGMENT=none,dihedral --seeds 3
--out runs/ablate-augment``. The folder is a run folder (the upstream stages, report.html) that also holds
ablation.json (what was asked), ablation/<setting>-seed-<n>/ (one run folder per setting and seed),
ablation.csv (one row per run) and ablation.md (mean and spread per setting, paired differences).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from pathlib import Path

from hpa_utils import errors, stages
from hpa_utils.pipeline import runner
from hpa_utils.results import ablation_tables, report
from hpa_utils.stages import parameters
from hpa_utils.system import atomic_files

RECORD_FILE = "ablation.json"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One combination of the varied parameters and one seed: a run of the stage."""

    values: tuple  # ((name, value), ...) in --vary order
    seed: int

    @property
    def folder(self) -> str:
        text = "_".join(f"{name}-{value}" for name, value in self.values) + f"_seed-{self.seed}"
        return re.sub(r"[^A-Za-z0-9._-]+", "", text)

    def label(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.values)


def parse_vary(items: list[str]) -> dict:
    """``["AUGMENT=none,dihedral", "WARMUP_EPOCHS=0,1"]`` -> {"AUGMENT": ["none", "dihedral"], ...} (YAML values)."""
    varied = {}
    for item in items:
        name, separator, text = item.partition("=")
        values = [part.strip() for part in text.split(",") if part.strip()]
        if not separator or not name.isidentifier() or len(values) < 2:
            raise errors.InputError(f"--vary {item!r}: expected NAME=VALUE1,VALUE2[,...] (at least two values)")
        if name in varied:
            raise errors.InputError(f"--vary {name} is given twice; list all its values in one --vary")
        varied[name] = [parameters.parse_overrides([f"{name}={value}"])[name] for value in values]
    if not varied:
        raise errors.InputError("ablate needs at least one --vary NAME=VALUE1,VALUE2")
    return varied


def reference_values(preset: dict, stage: str, varied: dict, overrides: dict) -> dict:
    """The value each varied name has in the preset's run of ``stage`` (the setting the others are measured
    against); ValueError when the stage does not declare a name, or declares no SEED."""
    declared = parameters.declared(stage)
    for name in [*varied, *overrides, "SEED"]:
        if name not in declared:
            raise errors.InputError(f"{stage} declares no parameter {name} (it declares {', '.join(sorted(declared))})")
    if "SEED" in varied:
        raise errors.InputError("--vary SEED: seeds come from --seeds")
    values = parameters.stage_values(preset, stage, declared, overrides)
    for name, options in varied.items():
        for option in options:
            parameters.check_type(stage, name, declared[name][0], option, f"--vary {name}")
    return {name: values.get(name, declared[name][1]) for name in [*varied, "SEED"]}


def settings(varied: dict, reference: dict, seeds: int, one_at_a_time: bool) -> list[Setting]:
    """Every run: all combinations of the varied values (or, one at a time, the reference and each other value
    of one name with the rest at the reference), each with ``seeds`` seeds from the preset's SEED up."""
    names = list(varied)
    if one_at_a_time:
        base = tuple((name, reference[name]) for name in names)
        combinations = [base] + [
            tuple((other, value if other == name else reference[other]) for other in names)
            for name in names
            for value in varied[name]
            if value != reference[name]
        ]
    else:
        combinations = [tuple(zip(names, values)) for values in itertools.product(*varied.values())]
    first_seed = int(reference["SEED"])
    return [Setting(values, first_seed + offset) for values in combinations for offset in range(seeds)]


def upstream_stages(preset: dict, stage: str) -> list[str]:
    """The preset's stages that ``stage`` reads (``stages.Stage.upstream``): run once, shared by every run."""
    upstream = stages.record(stage).upstream
    if stage not in preset["notebooks"]:
        raise errors.InputError(f"preset {preset['name']} does not run {stage}")
    return [name for name in preset["notebooks"] if name in upstream]


def check_record(out: Path, request: dict) -> bool:
    """Whether ``out`` already holds this ablation (ablation.json asking the same); FileExistsError when it
    holds another one, or files that are neither a run folder nor an ablation."""
    path = out / RECORD_FILE
    if path.is_file():
        saved = atomic_files.read_json(path)
        asked = {key: saved.get(key) for key in request}
        if asked != request:
            raise errors.ExistsError(
                f"--out {out} holds an ablation of other settings ({path}: {asked}); "
                f"continue it with `ablate --resume {out}`, or choose another --out"
            )
        return True
    if out.is_file() or out.is_dir() and any(out.iterdir()) and not (out / runner.RUN_FILE).is_file():
        raise errors.ExistsError(
            f"--out {out} already exists and is not a run folder or an ablation; nothing was touched"
        )
    return False


def run_upstream(preset_name: str, stage_list: list[str], out: Path, data_dir, overrides: dict) -> None:
    """The shared upstream stages in ``out`` (a run folder), the unfinished ones only."""
    missing = [stage for stage in stage_list if not stages.is_finished(out / stage)]
    if not missing:
        return
    if (out / runner.RUN_FILE).is_file():
        runner.run(resume=str(out), only=missing, overrides=overrides, verbose=False)
    else:
        runner.run(
            preset=preset_name, data_dir=data_dir, out=str(out), only=missing, overrides=overrides, verbose=False
        )


def run_setting(request: dict, setting: Setting, out: Path) -> Path:
    """One run of the stage (resumed when it was stopped, kept when it finished); return its run folder."""
    run_dir = out / "ablation" / setting.folder
    if stages.is_finished(run_dir / request["stage"]):
        return run_dir
    overrides = {**request["overrides"], **dict(setting.values), "SEED": setting.seed}
    if "UPSTREAM_DIR" in parameters.declared(request["stage"]):
        overrides["UPSTREAM_DIR"] = str(out)
    if (run_dir / runner.RUN_FILE).is_file():
        runner.run(resume=str(run_dir), only=[request["stage"]], verbose=False)
    else:
        runner.run(
            preset=request["preset"],
            data_dir=request["data_dir"],
            out=str(run_dir),
            only=[request["stage"]],
            overrides=overrides,
            verbose=False,
        )
    return run_dir


def ablate(
    preset: str,
    stage: str,
    vary: list[str],
    seeds: int = 3,
    out: str | None = None,
    data_dir: str | None = None,
    overrides: dict | None = None,
    one_at_a_time: bool = False,
) -> Path:
    """Run the ablation (or continue it) and write ablation.csv, ablation.md and report.html; return --out."""
    if seeds < 1:
        raise errors.InputError(f"--seeds {seeds}: at least 1")
    if not out:
        raise errors.InputError("ablate needs --out DIR (or --resume DIR)")
    preset_record = parameters.load_preset(preset)
    overrides = dict(overrides or {})
    varied = parse_vary(vary)
    reference = reference_values(preset_record, stage, varied, overrides)
    runs = settings(varied, reference, seeds, one_at_a_time)
    if data_dir:
        runner.check_data_dir(data_dir)
    out_dir = Path(out).expanduser().resolve()
    request = {
        "preset": preset,
        "stage": stage,
        "vary": vary,
        "seeds": seeds,
        "one_at_a_time": one_at_a_time,
        "data_dir": str(Path(data_dir).expanduser().resolve()) if data_dir else None,
        "overrides": overrides,
    }
    recorded = check_record(out_dir, request)
    print(f"ablation {out_dir}: {stage}, {len(runs)} runs ({len(runs) // seeds} settings x {seeds} seeds)", flush=True)
    run_upstream(preset, upstream_stages(preset_record, stage), out_dir, request["data_dir"], overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    created = (
        atomic_files.read_json(out_dir / RECORD_FILE)["created"]
        if recorded
        else dt.datetime.now().isoformat("T", "seconds")
    )
    atomic_files.write_json(out_dir / RECORD_FILE, {**request, "reference": reference, "created": created})
    for number, setting in enumerate(runs, 1):
        print(f"[{number}/{len(runs)}] {setting.label()} SEED={setting.seed}", flush=True)
        run_setting(request, setting, out_dir)
        ablation_tables.write(out_dir, stage, runs, reference)
    report.write_report(out_dir)
    print(f"wrote {out_dir / 'ablation.csv'}, {out_dir / 'ablation.md'} and {out_dir / 'report.html'}", flush=True)
    return out_dir


def resume(out: str) -> Path:
    """Continue the ablation in ``out`` with what its ablation.json asked."""
    path = Path(out).expanduser().resolve() / RECORD_FILE
    if not path.is_file():
        raise errors.MissingError(f"--resume {out}: no {RECORD_FILE} there; is it an ablation folder?")
    saved = atomic_files.read_json(path)
    return ablate(
        saved["preset"],
        saved["stage"],
        saved["vary"],
        seeds=saved["seeds"],
        out=out,
        data_dir=saved["data_dir"],
        overrides=saved["overrides"],
        one_at_a_time=saved["one_at_a_time"],
    )


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils ablate`."""
    if arguments.resume:
        resume(arguments.resume)
        return 0
    if not arguments.stage:
        raise errors.InputError("ablate needs --stage (or --resume DIR)")
    ablate(
        arguments.preset,
        arguments.stage,
        arguments.vary,
        seeds=arguments.seeds,
        out=arguments.out,
        data_dir=arguments.data_dir,
        overrides=parameters.parse_overrides(arguments.parameter),
        one_at_a_time=arguments.one_at_a_time,
    )
    return 0

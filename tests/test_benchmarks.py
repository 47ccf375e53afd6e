"""The benchmarks run end to end (tiny --quick runs) and print every row and target line; the table helpers."""

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks import common, gpu, public_kernel, run
from hpa_utils.system.environment import REPO_ROOT

NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
UNIT = r"(?: %|x| x cores| GB)"
TARGET_LINE = re.compile(
    rf"^target (?P<name>.+?): (?:(?P<measured>{NUMBER}){UNIT} \(goal (?:>=|<) {NUMBER}{UNIT}\) (?P<verdict>PASS|MISS)"
    rf"|(?P<unmeasured>not measured) \(goal (?:>=|<) {NUMBER}{UNIT}; [^)]+\))$"
)


def run_module(module: str, data_root: Path, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--data-root", str(data_root), *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{module} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


def assert_rows(output: str, names) -> None:
    for name in names:
        match = re.search(rf"^{re.escape(name)}\s+({NUMBER})\s+\S", output, flags=re.MULTILINE)
        assert match, f"row {name!r} missing or without a number in:\n{output}"


def target_lines(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith("target ")]
    verdicts = {}
    for line in lines:
        match = TARGET_LINE.match(line)
        assert match, f"malformed target line: {line!r}"
        verdicts[match["name"]] = match["verdict"] or match["unmeasured"]
    return verdicts


def test_target_line_and_numbers():
    assert (
        common.target_line("first pass", 2.5, "x", 2, at_least=True) == "target first pass: 2.50x (goal >= 2.00x) PASS"
    )
    assert common.target_line("overhead", 5.0, " %", 5, at_least=False).endswith("(goal < 5.00 %) MISS")
    unmeasured = common.not_measured_line("scaling", " x cores", 0.7, at_least=True, reason="no GPU")
    assert unmeasured == "target scaling: not measured (goal >= 0.700 x cores; no GPU)"
    assert target_lines(unmeasured) == {"scaling": "not measured"}
    assert [common.format_number(value) for value in (1234.4, 56.78, 1.234, 0.01234)] == [
        "1234",
        "56.8",
        "1.23",
        "0.012",
    ]


def test_best_times_rotates_the_order_and_keeps_the_minimum():
    calls = []
    times = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 6.0, 4.0])}

    def variant(name):
        def measure():
            calls.append(name)
            return next(times[name])

        return measure

    best = common.best_times({"a": variant("a"), "b": variant("b")}, repeats=3)
    assert best == {"a": 1.0, "b": 4.0}
    assert calls == ["a", "b", "b", "a", "a", "b"]


def test_every_backbone_can_be_benchmarked_and_resnet50_is_the_default():
    from hpa_utils import models

    assert set(common.BACKBONE_LABELS) == set(models.BACKBONES)
    assert common.Settings().backbone == common.Settings.quick().backbone == gpu.Settings().backbone == "resnet50"
    assert run.parse_settings(["--quick", "--backbone", "small"]).backbone == "small"
    with pytest.raises(SystemExit):
        run.parse_settings(["--backbone", "resnet18"])


def test_halve_then_resize_is_inter_area_for_a_halving():
    image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    expected = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(public_kernel.halve_then_resize(image, 32), expected)
    assert public_kernel.halve_then_resize(image, 20).shape == (20, 20)


@pytest.mark.integration  # runs `python -m benchmarks.run --quick`: every benchmark once (the small backbone's model)
def test_run_quick_prints_every_row_and_target(tmp_path):
    output = run_module("benchmarks.run", tmp_path, "--backbone", "small")  # the rows are the same for ResNet50
    assert re.search(r"^machine: .*os\.cpu_count\(\) = \d+.*load average at start", output, flags=re.MULTILINE)
    assert re.search(r"^versions: python .*opencv .*tensorflow ", output, flags=re.MULTILINE)
    assert re.search(r"^data: 8 train samples, 64 px PNG", output, flags=re.MULTILINE)
    assert re.search(r"^sizes: .*use small CNN at 32 px rgby", output, flags=re.MULTILINE)
    assert "load average at end" in output
    assert_rows(output, run.ROW_NAMES)
    verdicts = target_lines(output)
    assert list(verdicts) == list(run.TARGET_NAMES)  # every goal's line, the GPU check's too
    assert [verdicts[name] for name, _, _ in gpu.goals(gpu.Settings())] == ["not measured"] * 3  # never a guess
    assert not list(tmp_path.glob("work-*")), "the temporary caches were left behind"
    step = re.search(r"^small 32 px +(\d+) ms +(\d+) ms +([\d.]+)$", output, flags=re.MULTILINE)  # section 5
    assert step and float(step.group(3)) == pytest.approx(int(step.group(2)) / int(step.group(1)), rel=0.1)


@pytest.mark.integration  # runs `python -m benchmarks.gpu --quick`: the small backbone's model trained at two sizes
def test_gpu_quick_prints_every_row_and_target(tmp_path):
    output = run_module("benchmarks.gpu", tmp_path, "--backbone", "small")  # the rows are the same for ResNet50
    settings = gpu.Settings.tiny(tmp_path)
    assert re.search(r"^machine: .*devices: ", output, flags=re.MULTILINE)
    assert re.search(r"^model: small CNN rgby", output, flags=re.MULTILINE)
    assert_rows(output, gpu.row_names(settings))
    assert list(target_lines(output)) == [name for name, _, _ in gpu.goals(settings)]


def test_external_download_benchmark_prints_measured_and_extrapolated_numbers(capsys):
    from benchmarks import external

    assert external.main(["--ids", "2", "--source-size", "128", "--size", "64", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "measured: 2 Ids (8 colour JPEGs of 128 px)" in printed and "s per Id" in printed
    assert "extrapolated to 74,606 Ids (not measured)" in printed and "GB of PNGs on disk" in printed


def test_generation_benchmark_prints_measured_numbers(capsys):
    from benchmarks import synthetic as generation_benchmark

    assert generation_benchmark.main(["--samples", "3", "--size", "64", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^generate: 3 \+ 1 samples at 64 px, 1 workers: [\d.]+ s", printed, flags=re.MULTILINE)
    assert re.search(r"render_sample alone, 1 thread: [\d.]+ ms per sample", printed)
    assert re.search(
        r"^target generation of 1,000 samples at 64 px: [\d.]+ s \(goal < 60\.0 s\) (PASS|MISS)$",
        printed,
        flags=re.MULTILINE,
    )


@pytest.mark.integration  # builds and saves the smoke preset's models: the files each stage writes, measured
def test_outputs_quick_measures_each_stages_files(tmp_path):
    output = run_module("benchmarks.outputs", tmp_path)
    assert_rows(output, ["01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"])
    assert TARGET_LINE.match(output.strip().splitlines()[-1]).group("verdict") == "PASS"
    assert list(tmp_path.iterdir()) == []  # written in a temporary folder, removed


@pytest.mark.integration  # builds and saves the demo preset's models
def test_the_runner_s_space_estimate_agrees_with_what_the_stages_write(tmp_path):
    from benchmarks import outputs
    from hpa_utils.pipeline import stage_space
    from hpa_utils.stages import parameters
    from hpa_utils.stages.stage_config import StageConfig

    preset = parameters.load_preset("demo")

    def config(stage):
        return StageConfig.from_values(stage, parameters.stage_values(preset, stage, parameters.declared(stage)))

    for stage, written, _ in outputs.measure("demo", 1000, 200, tmp_path):
        backbone = config("02_warmup_finetune").backbone if stage == "03_upscale" else None  # 03's is 02's
        estimate = stage_space.stage_bytes(config(stage), train_images=1000, test_images=200, backbone=backbone)
        files_only = estimate - stage_space.NOTEBOOK_BYTES.get(stage, stage_space.DEFAULT_NOTEBOOK_BYTES)
        assert 0.9 <= files_only / written <= 1.4, (stage, files_only, written)  # errs large for the adapter's head


def test_the_budget_scales_published_figures_by_pixels_precision_and_gpus(capsys):
    from benchmarks import budget

    mixed = budget.images_per_second("resnet50", 224, "mixed_float16", training=True, gpus=1)
    assert mixed == pytest.approx(995.81 * 1270.0 / 2770.61)  # T4 inference x the V100's training/inference ratio
    assert budget.images_per_second("resnet50", 512, "mixed_float16", training=True, gpus=1) == pytest.approx(
        mixed * (224 / 512) ** 2
    )
    assert budget.images_per_second("resnet50", 224, "mixed_float16", training=True, gpus=2) == pytest.approx(
        mixed * 1.87
    )
    assert budget.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# projected hours (not measured")
    assert [line.split()[0] for line in lines[2:]] == ["01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"]
    hours = {line.split()[0]: [float(value) for value in line.split()[1:4]] for line in lines[2:]}
    assert all(float32 > 2.5 * mixed for mixed, float32, _ in hours.values())  # tensor cores
    assert hours["04_kfold"][0] > hours["03_upscale"][0] > hours["02_warmup_finetune"][0]
    assert all(tpu == pytest.approx(mixed / budget.TPU_V5E8_OVER_T4X2, abs=0.01) for mixed, _, tpu in hours.values())
    assert budget.main(["--external"]) == 0
    external = {line.split()[0]: float(line.split()[1]) for line in capsys.readouterr().out.splitlines()[2:]}
    assert all(external[stage] > 2 * hours[stage][0] for stage in ("02_warmup_finetune", "03_upscale", "04_kfold"))


def test_accel_check_says_there_is_no_accelerator_in_seconds_on_a_cpu():
    from benchmarks import accel_check

    if accel_check.accelerator():
        pytest.skip("this machine has an accelerator: make accel-check measures it")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.accel_check"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "no accelerator" in result.stdout
    assert "tensorflow" not in result.stderr.lower()  # it imports no framework to find out


def test_accel_check_has_its_block_to_write_in_the_benchmarks_readme():
    from benchmarks import accel_check, common

    content = accel_check.README.read_text()
    written = common.replace_block(content, "accel-check", "\nmeasured\n", accel_check.README)
    assert "<!-- accel-check -->\nmeasured\n<!-- /accel-check -->" in written
    assert written.replace("\nmeasured\n", "") == common.replace_block(content, "accel-check", "", "README")
    with pytest.raises(ValueError, match="README.md: no <!-- accel-check --> ... <!-- /accel-check --> block"):
        common.replace_block("no block here", "accel-check", "x", "README.md")


def test_timings_write_every_marked_block_and_nothing_else(tmp_path):
    import datetime as dt

    from benchmarks import timings

    for name, markers in timings.MARKERS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"before <!-- {marker} -->old<!-- /{marker} --> after\n" for marker in markers)
        (tmp_path / name).write_text(text)
    started = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
    result = {"commit": "abc1234", "cpu": "AMD EPYC, 2 cores, AVX-512", "started": started, "finished": started}
    result |= {"demo": {"seconds": 800.0, "stages": {"00_eda": 30.0, "01_baseline": 140.0}}, "demo-table": "| t |"}
    result |= {target: {"seconds": 61.0, "tests": "5 passed"} for target in ("smoke", "lint", "test-fast")}
    result["test"] = {"seconds": 61.0, "tests": "5 passed", "workers": 3}
    texts = timings.blocks(result)
    assert texts["demo-time"] == "13 min 20 s" and texts["demo-table"] == "| t |"
    assert (
        "commit abc1234" in texts["demo-provenance"]
        and "| `make test` (5 passed; 3 workers) | 1 min 1 s |" in texts["timings"]
    )
    timings.write(texts, tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "<!-- demo-time -->13 min 20 s<!-- /demo-time -->" in readme and "old" not in readme
    assert "before <!-- demo-table -->\n| t |\n<!-- /demo-table --> after" in readme

"""How long the README's commands take, and the demo's table, measured together on a fresh clone of HEAD.

``python -m benchmarks.timings [--write]``: clones the committed HEAD into a temporary folder (nothing installed),
then times there, one after the other, ``make demo`` (the install and the embedded dataset's generation included),
``make smoke``, ``make lint``, ``make test-fast`` and ``make test``, and takes the demo's table from the demo's own
run folder (``python -m hpa_utils summary RUN --markdown``). It prints the results; with ``--write`` it puts them
between the markers of README.md, docs/package.md and docs/method.md, so that every timing and the demo table there
come from one run of one tree. Takes about 40 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from hpa_utils.system import environment
from hpa_utils.system.environment import REPO_ROOT

TARGETS = ("demo", "smoke", "lint", "test-fast", "test")
INLINE = ("demo-time", "demo-provenance")  # written within a sentence; the other blocks on lines of their own
MARKERS = {  # file -> the blocks this command writes (between <!-- name --> and <!-- /name -->)
    "README.md": ("demo-time", "demo-table", "demo-provenance"),
    "docs/package.md": ("timings",),
    "docs/method.md": ("demo-table", "demo-provenance"),
}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60)} s" if seconds >= 60 else f"{seconds:.0f} s"


def _time(command: list[str], cwd: Path) -> tuple[float, str]:
    """Run ``command`` in ``cwd``; (seconds, its output). Raises RuntimeError with the output's end if it fails."""
    started = time.time()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{output[-4000:]}")
    return time.time() - started, output


def measure(clone: Path) -> dict:
    """Clone HEAD into ``clone`` and time every target there; the results as a dict."""
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    result = {
        "commit": environment.commit(),
        "cpu": environment.cpu_description(),
        "started": dt.datetime.now(dt.timezone.utc),
    }
    for target in TARGETS:
        print(f"make {target} ...", flush=True)
        seconds, output = _time(["make", target], clone)
        result[target] = {"seconds": seconds}
        if target == "demo":
            run_dir = Path(re.search(r"^run (\S+): preset", output, re.MULTILINE).group(1))
            stages = json.loads((run_dir / "run.json").read_text())["stages"]
            result[target]["stages"] = {stage: entry["seconds"] for stage, entry in stages.items()}
            table = subprocess.run(
                [sys.executable, "-m", "hpa_utils", "summary", str(run_dir), "--markdown"],
                cwd=clone,
                capture_output=True,
                text=True,
                check=True,
            )
            result["demo-table"] = table.stdout.strip()
        counts = re.findall(r"(\d+ passed(?:, \d+ skipped)?)", output)
        if counts:
            result[target]["tests"] = counts[-1]
        workers = re.findall(r"^(\d+) workers \[", output, re.MULTILINE)  # pytest-xdist's count
        if workers:
            result[target]["workers"] = int(workers[-1])
        print(f"make {target}: {_minutes(seconds)}", flush=True)
    result["finished"] = dt.datetime.now(dt.timezone.utc)
    return result


def blocks(result: dict) -> dict:
    """The text of each marked block from the measurements."""
    when = f"{result['started']:%Y-%m-%d %H:%M}-{result['finished']:%H:%M} UTC"
    provenance = (
        f"`make demo` on a fresh clone of commit {result['commit']} ({when}, install and dataset generation "
        f"included; {result['cpu']}), by `python -m benchmarks.timings --write`"
    )
    stage_times = ", ".join(f"{stage[:2]}: {_minutes(seconds)}" for stage, seconds in result["demo"]["stages"].items())
    rows = [
        (
            "`make demo` (install, dataset generation, 00 -> 04)",
            f"{_minutes(result['demo']['seconds'])} ({stage_times})",
        ),
        ("`make smoke` (00 -> 04, tiny images, one epoch)", _minutes(result["smoke"]["seconds"])),
        ("`make lint` (ruff)", _minutes(result["lint"]["seconds"])),
        (f"`make test-fast` ({result['test-fast'].get('tests', '')})", _minutes(result["test-fast"]["seconds"])),
        (
            f"`make test` ({result['test'].get('tests', '')}; {result['test'].get('workers', '?')} workers)",
            _minutes(result["test"]["seconds"]),
        ),
    ]
    table = "\n".join(
        [
            f"Commit {result['commit']}, {when}, {result['cpu']}; one after the other on a fresh clone.",
            "",
            "| command | time |",
            "|---|---|",
        ]
        + [f"| {what} | {time_taken} |" for what, time_taken in rows]
    )
    return {
        "demo-time": _minutes(result["demo"]["seconds"]),
        "demo-table": result["demo-table"],
        "demo-provenance": provenance,
        "timings": table,
    }


def write(texts: dict, root: Path = REPO_ROOT) -> list[Path]:
    """Replace each marked block in the files of ``MARKERS``; returns the files written."""
    written = []
    for name, markers in MARKERS.items():
        path = root / name
        content = path.read_text()
        for marker in markers:
            body = texts[marker] if marker in INLINE else f"\n{texts[marker]}\n"
            content = common.replace_block(content, marker, body, path)
        path.write_text(content)
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the results into README.md and docs/")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpa-timings-") as folder:
        texts = blocks(measure(Path(folder) / "clone"))
    print("\n\n".join(f"{name}:\n{text}" for name, text in texts.items()))
    if arguments.write:
        for path in write(texts):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

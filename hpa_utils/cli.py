"""The command line: `python -m hpa_utils {run,ablate,summary,validate,synth,synth-stats,pretrain,external,...}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpa_utils.runner import RunError


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


def _add_pretrain(commands) -> None:
    pretrain = commands.add_parser(
        "pretrain",
        help="train the small backbone on a source task without the 28 labels: a stand-in for ImageNet weights",
        description="Train the small backbone on a source task that is not the competition's and write it as a notop "
        "weights file (WEIGHTS=FILE). structures: which of 30 procedurally drawn shapes, spots, fibres and textures "
        "(10 families at 3 scales) an image holds; fields: six properties of an embedded field of view that are not "
        "its labels (cell count, coverage, nucleus size, red/blue/yellow brightness).",
    )
    pretrain.add_argument("--out", required=True, help="the weights file to write (.h5); its provenance goes to .json")
    pretrain.add_argument("--task", choices=("structures", "fields"), default="structures", help="the source task")
    pretrain.add_argument("--images", type=int, default=10000, help="source images (default 10000, a tenth validation)")
    pretrain.add_argument("--size", type=int, default=64, help="image side in pixels (default 64, the demo's)")
    pretrain.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    pretrain.add_argument("--seed", type=int, default=2026, help="source images and initialisation (default 2026)")


def _add_synth_stats(commands) -> None:
    stats = commands.add_parser(
        "synth-stats", help="measure a Kaggle-layout folder's images as the real reference was, side by side with it"
    )
    stats.add_argument("data_dir")
    stats.add_argument("--samples", type=int, default=100, help="images measured, drawn at random (default 100)")
    stats.add_argument("--split", choices=("train", "test"), default="train")
    stats.add_argument("--seed", type=int, default=0, help="which images are drawn (default 0)")
    stats.add_argument("--check", action="store_true", help="exit with status 1 when any row misses")


def _synth_stats(arguments) -> int:
    from hpa_utils import image_statistics

    if not Path(arguments.data_dir).is_dir():
        raise FileNotFoundError(f"{arguments.data_dir}: no such folder")
    if arguments.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {arguments.samples}")
    per_image = image_statistics.measure_folder(arguments.data_dir, arguments.samples, arguments.split, arguments.seed)
    table = image_statistics.compare(image_statistics.summarise(per_image))
    print(
        f"{arguments.data_dir}: {len(per_image)} {arguments.split} images, each channel read at "
        f"{image_statistics.MEASURE_SIZE} px with INTER_AREA; reference: {image_statistics.REFERENCE_CSV.name}"
    )
    print(image_statistics.format_comparison(table, "this folder"))
    return 1 if arguments.check and not table["pass"].all() else 0


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
        help="the machine the training kernels ask for: t4x2 (Kaggle's GPU T4 x2, the default), p100 or none",
    )
    export.add_argument(
        "--fold-kernels",
        action="store_true",
        help="04 as one kernel per fold and a merge kernel, when all folds do not fit in one Kaggle session",
    )
    export.add_argument(
        "--wheel-dir",
        metavar="DIR",
        help="where the imgaug and iterative-stratification wheels are (default .whl/, filled "
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
    synth.add_argument("--train", type=int, default=600)
    synth.add_argument("--test", type=int, default=200)
    synth.add_argument("--size", type=int, default=512)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--min-per-class", type=int, default=2)
    synth.add_argument("--workers", type=int, default=None)
    synth.add_argument(
        "--hpav18",
        action="store_true",
        help="write --train samples as the HPAv18 image server holds them (colour JPEGs, DIR/images/, labels CSV)",
    )
    _add_synth_stats(commands)
    _add_pretrain(commands)
    _add_external(commands)

    _add_kaggle_export(commands)
    return parser


def _ablate(arguments) -> int:
    from hpa_utils import ablation, parameters

    if arguments.resume:
        ablation.resume(arguments.resume)
        return 0
    if not arguments.stage:
        raise ValueError("ablate needs --stage (or --resume DIR)")
    ablation.ablate(
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


def _external(arguments) -> int:
    from hpa_utils import external

    summary = external.download(
        arguments.labels,
        arguments.out,
        base_url=arguments.base_url or external.V18_URL,
        limit=arguments.limit,
        workers=arguments.workers,
        size=arguments.size,
        retries=arguments.retries,
    )
    print(external.describe(summary, arguments.out))
    return 0 if summary["failed"] == 0 else 1


def _synth(arguments) -> int:
    if arguments.hpav18:
        from hpa_utils.synthetic import hpav18

        path = hpav18.write_hpav18(arguments.out, arguments.train, image_size=arguments.size, seed=arguments.seed)
        print(f"wrote {path}: serve {path / hpav18.IMAGES_FOLDER}; labels {path / hpav18.LABELS_CSV}")
        return 0
    from hpa_utils import synthetic

    path = synthetic.generate(
        arguments.out,
        arguments.train,
        arguments.test,
        image_size=arguments.size,
        seed=arguments.seed,
        min_per_class=arguments.min_per_class,
        workers=arguments.workers,
    )
    print(f"wrote {path}")
    return 0


def _summary(run_dir: str, as_markdown: bool) -> int:
    from hpa_utils import comparison, stages

    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    table = comparison.table(run_dir)
    if table.empty:
        raise ValueError(f"{run_dir}: no training stage has finished there (no <stage>/{stages.METRICS_FILE})")
    if as_markdown:  # the scores only: seconds move with the machine's load, the scores do not
        print(comparison.markdown(table.drop(columns=["seconds"], errors="ignore")))
    else:
        print(table.to_string(index=False))
    return 0


def main(argv=None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "run":
            from hpa_utils import runner

            return runner.main(arguments)
        if arguments.command == "ablate":
            return _ablate(arguments)
        if arguments.command == "summary":
            return _summary(arguments.run_dir, arguments.markdown)
        if arguments.command == "validate":
            from hpa_utils import dataset

            return dataset.main_validate(
                arguments.data_dir, check_images=not arguments.no_images, training_only=arguments.training_only
            )
        if arguments.command == "external":
            return _external(arguments)
        if arguments.command == "synth-stats":
            return _synth_stats(arguments)
        if arguments.command == "synth":
            return _synth(arguments)
        if arguments.command == "pretrain":
            from hpa_utils.stand_in import pretrain

            return pretrain.main(arguments)
        if arguments.command == "kaggle-export":
            from hpa_utils import kaggle

            path = kaggle.export(
                arguments.user,
                arguments.out,
                public=arguments.public,
                preset=arguments.preset,
                weights_dataset=arguments.weights_dataset,
                wheel_dir=arguments.wheel_dir,
                accelerator=arguments.accelerator,
                fold_kernels=arguments.fold_kernels,
            )
            print(f"wrote {path}\n{kaggle.describe(path)}\nnext: {path / 'UPLOAD.md'} (what to push, in order)")
            return 0
    except RunError as error:  # a notebook failed: the message names the cell and the executed copy
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, wherever a command writes: one line, no traceback
        from hpa_utils import disk

        if not disk.is_full_disk(error):
            raise
        folder = disk.path_in(error)
        where = folder.parent if folder else Path.cwd()
        print(
            f"error: the disk holding {where} is full ({disk.describe(disk.free_bytes(where))} free): {error}",
            file=sys.stderr,
        )
        return 1
    return 1

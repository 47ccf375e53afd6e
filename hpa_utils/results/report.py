"""The run report: report.html with the stage table (intervals, image sets), each stage's training curves,
per-class F1, 04's thresholds, the ablation when the folder holds one, and links to the notebooks."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from hpa_utils import stages
from hpa_utils.results import ablation_tables, comparison, plots
from hpa_utils.stages import stage_files
from hpa_utils.system import atomic_files

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td{white-space:nowrap}"
    "td:first-child,th:first-child{text-align:left}"
    "th{background:#f3f3f3}p.note{color:#444;max-width:60em}img{max-width:100%}"
)
TABLE_NOTE = (
    "Each score is on the images named in <i>scored on</i>: 01-03 on the same validation images, 04 on its "
    "out-of-fold predictions of every training image, so 04's scores and 01-03's are not on the same images. "
    "Intervals: 95 % bootstrap over the images (1,000 draws, seeded), the threshold fixed at the one chosen. "
    "<i>vs stage before</i>: the difference to the stage above on the same draws (a paired bootstrap)."
)


def _figure_tag(figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plots.plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _stage_section(run_dir: Path) -> list[str]:
    rows = comparison.rows(str(run_dir))
    if not rows:
        return ["<h2>Stages</h2>", "<p>No training stage has finished yet.</p>"]
    return [
        "<h2>Stages</h2>",
        comparison.table(str(run_dir)).to_html(index=False, escape=True),
        f'<p class="note">{TABLE_NOTE}</p>',
        _figure_tag(plots.scores_with_intervals(rows), "scores with intervals"),
    ]


def _curves_section(run_dir: Path) -> list[str]:
    """Training curves of every stage (of every fold, for 04) that left a history.csv."""
    parts = []
    for stage in stages.TRAINING_STAGES:
        folder = run_dir / stage
        histories = sorted(folder.glob(stages.HISTORY_FILE)) + sorted(folder.glob(f"fold_*/{stages.HISTORY_FILE}"))
        for path in histories:
            title = stage if path.parent.name == stage else f"{stage} {path.parent.name}"
            parts.append(_figure_tag(plots.training_curves(pd.read_csv(path), title), f"training curves {title}"))
    return ["<h2>Training curves</h2>", *parts] if parts else []


def _per_class_section(run_dir: Path) -> list[str]:
    parts = []
    per_class = stage_files.per_class_by_stage(str(run_dir))
    if per_class:
        parts += ["<h2>Per-class F1</h2>", _figure_tag(plots.per_class_f1(per_class), "per-class F1")]
    thresholds = run_dir / "04_kfold" / stages.THRESHOLDS_FILE
    if thresholds.is_file():
        saved = atomic_files.read_json(thresholds)
        figure = plots.thresholds(saved["per_class"], saved["global"])
        parts += [
            "<h2>Thresholds of 04 (chosen on the out-of-fold predictions)</h2>",
            _figure_tag(figure, "thresholds"),
        ]
    return parts


def _ablation_section(run_dir: Path) -> list[str]:
    """The ablation's tables and a plot of every run's score, when run_dir holds ablation.csv."""
    record_path, table_path = run_dir / "ablation.json", run_dir / "ablation.csv"
    if not (record_path.is_file() and table_path.is_file() and table_path.stat().st_size > 1):
        return []
    record = atomic_files.read_json(record_path)
    reference = record.get("reference") or {}
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    names = [name for name in reference if name != "SEED" and name in table]
    if table.empty or not names:
        return []
    for column in ("SEED", stages.HEADLINE, "f1_at_0.5", "seconds"):
        table[column] = pd.to_numeric(table[column])
    by_setting, differences = ablation_tables.summaries(run_dir, record["stage"], table, names, reference)
    settings = ablation_tables.setting_labels(table, names, reference)
    where = ablation_tables.image_set(run_dir, record["stage"], table)
    return [
        f"<h2>Ablation of {html.escape(record['stage'])}</h2>",
        f'<p class="note">{len(table)} runs, scored on the same {html.escape(where)}. Per setting, over seeds:</p>',
        by_setting.to_html(index=False),
        _figure_tag(plots.ablation_scores(settings, table[stages.HEADLINE]), "ablation scores"),
        '<p class="note">Paired differences to the reference (same seed, everything else equal). '
        f"{html.escape(ablation_tables.INTERVAL_NOTE.replace('`', ''))}</p>",
        differences.to_html(index=False) if len(differences) else "<p>No pair has finished yet.</p>",
    ]


def _links(run_dir: Path) -> list[str]:
    links = []
    for stage in stages.STAGES:
        notebook = run_dir / f"{stage}.ipynb"
        if notebook.is_file():
            state = "finished" if stages.is_finished(run_dir / stage) else "not finished"
            page = f' (<a href="{stage}.html">HTML</a>)' if notebook.with_suffix(".html").is_file() else ""
            log = f', <a href="{stage}.log">kernel log</a>' if notebook.with_suffix(".log").is_file() else ""
            links.append(f'<li><a href="{stage}.ipynb">{stage}.ipynb</a>{page}{log}: {state}</li>')
    return ["<h2>Executed notebooks</h2>", "<ul>", *links, "</ul>"] if links else []


def write_report(run_dir) -> Path:
    """Write RUN_DIR/report.html from what the run's stages left (works on partial runs too)."""
    run_dir = Path(run_dir)
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>HPA run {html.escape(run_dir.name)}</title>",
        f"<style>{STYLE}</style>",
        f"<h1>Run {html.escape(run_dir.name)}</h1>",
        *_stage_section(run_dir),
        *_ablation_section(run_dir),
        *_curves_section(run_dir),
        *_per_class_section(run_dir),
        *_links(run_dir),
    ]
    target = run_dir / "report.html"
    with atomic_files.atomic_write(target) as temporary:
        temporary.write_text("\n".join(parts), encoding="utf-8")
    return target

"""The run report: report.html with every stage's scores, per-class F1 and links to the notebooks."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from hpa_utils import comparison, files, plots, stages


def _cell(value) -> str:
    """A table cell: blank where a stage has no value, scores to 4 decimals, counts as whole numbers."""
    if pd.isna(value):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _figure_tag(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plots.plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="per-class F1" src="data:image/png;base64,{encoded}">'


def write_report(run_dir) -> Path:
    """Write RUN_DIR/report.html from what the run's stages left (works on partial runs too)."""
    run_dir = Path(run_dir)
    table = comparison.table(str(run_dir))
    per_class = stages.per_class_by_stage(str(run_dir))
    links = []
    for stage in stages.STAGES:
        notebook = run_dir / f"{stage}.ipynb"
        if notebook.is_file():
            finished = (run_dir / stage / "metrics.json").is_file()
            state = "finished" if finished else "not finished"
            page = f' (<a href="{stage}.html">HTML</a>)' if notebook.with_suffix(".html").is_file() else ""
            links.append(f'<li><a href="{stage}.ipynb">{stage}.ipynb</a>{page}: {state}</li>')
    parts = [
        "<!doctype html><meta charset='utf-8'><title>HPA run report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>",
        f"<h1>Run {html.escape(run_dir.name)}</h1>",
        "<h2>Stages</h2>",
        table.to_html(index=False) if len(table) else "<p>No training stage has finished yet.</p>",
    ]
    if per_class:
        parts += ["<h2>Per-class F1</h2>", _figure_tag(plots.per_class_f1(per_class))]
    parts += ["<h2>Executed notebooks</h2>", "<ul>", *links, "</ul>"]
    target = run_dir / "report.html"
    with files.atomic_write(target) as temporary:
        temporary.write_text("\n".join(parts), encoding="utf-8")
    return target

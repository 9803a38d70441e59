"""Charts for asset pages: small PNGs inlined in markdown metadata, so the UI shows them without a file server.

matplotlib is imported only when a chart is drawn (about 1.5 s at import otherwise, paid by every process that
loads the definitions), and through its object API: a Figure on an Agg canvas, no pyplot, no global backend.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from tqc_dagster.core.rubric import LABELS, TARGET_MODELS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLORS = {"negative": "#d62728", "positive": "#2ca02c"}


def _figure(**kwargs) -> Figure:
    """A figure rendered by Agg (PNG only, no display), outside pyplot's registry: nothing to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _inline(figure: Figure, title: str) -> dg.MetadataValue:
    buffer = io.BytesIO()
    # No timestamps or software version in the PNG: the same data gives the same bytes.
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def label_by_criterion(samples: pl.DataFrame) -> dg.MetadataValue:
    """Per target model, samples per criterion stacked by label: the balance a trainer will see."""
    figure = _figure(figsize=(9, 3))
    axes = figure.subplots(1, len(TARGET_MODELS), squeeze=False)
    tally = samples.group_by("target_model", "criterion", "label").agg(pl.len().alias("rows"))
    for ax, target_model in zip(axes[0], TARGET_MODELS):
        part = tally.filter(pl.col("target_model") == target_model).with_columns(
            pl.col("criterion").cast(pl.String).fill_null("flawless").alias("criterion")
        )
        criteria = sorted(part.get_column("criterion").unique().to_list())
        bottom = [0] * len(criteria)
        for label in LABELS:
            counts = dict(part.filter(pl.col("label") == label).select("criterion", "rows").iter_rows())
            heights = [counts.get(c, 0) for c in criteria]
            ax.bar(criteria, heights, bottom=bottom, color=COLORS[label], label=label)
            bottom = [b + h for b, h in zip(bottom, heights)]
        ax.set_title(f"{target_model} model")
        ax.set_xlabel("criterion")
        ax.set_ylabel("samples")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(LABELS), bbox_to_anchor=(0.5, 1.08))  # above the bars, never on them
    return _inline(figure, "samples by criterion and label")


def kappa_by_criterion(agreement: pl.DataFrame, min_kappa: float) -> dg.MetadataValue:
    """Weighted kappa per criterion with the warning line."""
    figure = _figure(figsize=(6, 3))
    ax = figure.subplots()
    rows = agreement.with_columns(pl.col("weighted_kappa").fill_null(0.0))
    ax.bar(rows.get_column("criterion").to_list(), rows.get_column("weighted_kappa").to_list(), color="#1f77b4")
    ax.axhline(min_kappa, color="#d62728", linestyle="--", label=f"min_kappa {min_kappa}")
    ax.set_ylim(min(0.0, rows.get_column("weighted_kappa").min() or 0.0), 1.0)
    ax.set_xlabel("criterion")
    ax.set_ylabel("weighted kappa")
    ax.legend()
    return _inline(figure, "judge agreement by criterion")

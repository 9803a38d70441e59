"""Materialization metadata that lets an asset page tell its story: counts, distributions, previews."""

from __future__ import annotations

import math

import dagster as dg
import polars as pl

from tqc_dagster.assets.charts import label_by_criterion

PREVIEW_ROWS = 10
PREVIEW_TEXT_CHARS = 60


def _cell(value):
    """A table cell the UI shows as is: numbers and booleans stay, text is cut, anything else becomes short text."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= PREVIEW_TEXT_CHARS else text[: PREVIEW_TEXT_CHARS - 1] + "…"


def _column_type(dtype: pl.DataType) -> str:
    return "float" if dtype.is_float() else "int" if dtype.is_integer() else "bool" if dtype == pl.Boolean else "string"


def table_metadata(frame: pl.DataFrame, max_rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows of a frame as a Dagster table (typed columns, long text cut), which the UI lays out
    in readable columns, unlike a markdown table."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, _column_type(dtype)) for name, dtype in frame.schema.items()])
    records = [dg.TableRecord({name: _cell(value) for name, value in row.items()}) for row in frame.head(max_rows).iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema)


def counts(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """Row counts per value of the columns, sorted by the columns (nulls first)."""
    return frame.group_by(columns).agg(pl.len().alias("rows")).sort(columns, nulls_last=False)


def counts_dict(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return {str(value): rows for value, rows in counts(frame, column).iter_rows()}


# What a person reads in a sample preview (the full row is in the parquet file).
SAMPLE_PREVIEW = ("record_id", "product_category", "target_lang", "source", "translation", "min_score", "criterion", "label", "origin")


def sample_metadata(samples: pl.DataFrame, chart: bool = True) -> dict[str, dg.MetadataValue]:
    """Distributions a data engineer looks at before trusting a set of samples; shares are numbers the UI plots.

    `chart`: the label balance chart (about 0.3 s to draw), for the sets a person judges the balance on."""
    rows = max(samples.height, 1)
    return {
        "dagster/row_count": dg.MetadataValue.int(samples.height),
        "negative_share": dg.MetadataValue.float(round(samples.filter(pl.col("label") == "negative").height / rows, 6)),
        "synthetic_share": dg.MetadataValue.float(round(samples.filter(pl.col("origin") == "synthetic").height / rows, 6)),
        **({"label_balance_chart": label_by_criterion(samples)} if chart else {}),
        "by_target_model_criterion_label": table_metadata(counts(samples, "target_model", "criterion", "label"), 50),
        "by_score_bucket": table_metadata(counts(samples, "score_bucket"), 10),
        "by_label": dg.MetadataValue.json(counts_dict(samples, "label")),
        "preview": table_metadata(samples.select(SAMPLE_PREVIEW)),
    }


def column_schema(schema) -> dict[str, dg.TableSchema]:
    """Column names, types and descriptions of a pandera model, for the asset page."""
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name, str(column.dtype), description=column.description or "")
                for name, column in schema.to_schema().columns.items()
            ]
        )
    }

"""Materialization metadata that lets an asset page tell its story: counts, distributions, previews."""

from __future__ import annotations

import dagster as dg
import polars as pl

from tqc_dagster.assets.charts import label_by_criterion

PREVIEW_ROWS = 10
PREVIEW_TEXT_CHARS = 60


def markdown(frame: pl.DataFrame, max_rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A frame as a markdown table (long text cut, lists shown inline)."""
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=max_rows,
        tbl_cols=-1,
        fmt_str_lengths=PREVIEW_TEXT_CHARS,
        fmt_table_cell_list_len=8,
    ):
        return dg.MetadataValue.md(str(frame.head(max_rows)))


def counts(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """Row counts per value of the columns, sorted by the columns (nulls first)."""
    return frame.group_by(columns).agg(pl.len().alias("rows")).sort(columns, nulls_last=False)


def counts_dict(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return {str(value): rows for value, rows in counts(frame, column).iter_rows()}


def sample_metadata(samples: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    """Distributions a data engineer looks at before trusting a set of samples."""
    return {
        "rows": dg.MetadataValue.int(samples.height),
        "label_balance_chart": label_by_criterion(samples),
        "by_target_model_criterion_label": markdown(counts(samples, "target_model", "criterion", "label"), 50),
        "by_score_bucket": markdown(counts(samples, "score_bucket"), 10),
        "by_label": dg.MetadataValue.json(counts_dict(samples, "label")),
        "preview": markdown(samples.drop("scores", "thought")),
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

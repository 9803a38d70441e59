"""The dataset card (README.md) of an export folder: what is in it and the config that made it."""

from __future__ import annotations

import polars as pl
import yaml

from tqc_dagster.core.export import criteria_text


def _table(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, tbl_rows=-1):
        return str(frame)


def _counts(splits: dict[str, pl.DataFrame], by: list[str]) -> pl.DataFrame:
    """Rows per value of `by` (null stays null: a flawless sample has no criterion), one column per split."""
    tallies = [frame.group_by(by).agg(pl.len().alias(name)) for name, frame in splits.items()]
    table = tallies[0]
    for tally in tallies[1:]:
        table = table.join(tally, on=by, how="full", coalesce=True, nulls_equal=True)
    return table.with_columns(pl.col(name).fill_null(0) for name in splits).sort(by, nulls_last=False)


def dataset_card(judge_version: str, target_model: str, splits: dict[str, pl.DataFrame], files: dict[str, str], config: dict, notes: list[str]) -> str:
    """Markdown: counts per split by criterion, label and origin; the files; the config."""
    totals = " / ".join(f"{name}: {frame.height}" for name, frame in splits.items())
    sections = [
        f"# tqc {judge_version} {target_model} quality-check fine-tuning set",
        f"Judge version `{judge_version}`, target model `{target_model}`. Samples: {totals}.",
        f"Criteria (scores 0-5):\n\n```\n{criteria_text(target_model)}\n```",
        "## Counts by criterion and label\n\n" + _table(_counts(splits, ["criterion", "label"])),
        "## Counts by origin\n\n" + _table(_counts(splits, ["origin"])),
        "## Counts by translation model\n\n" + _table(_counts(splits, ["model"])),
        "## Files\n\n" + "\n".join(f"- `{path}`: {what}" for path, what in files.items()),
    ]
    if notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {note}" for note in notes))
    sections.append("## Config that made it\n\n```yaml\n" + yaml.safe_dump(config, sort_keys=True, allow_unicode=True) + "```")
    return "\n\n".join(sections) + "\n"

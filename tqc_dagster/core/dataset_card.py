"""The dataset card (README.md) of an export folder: what is in it and the config that made it."""

from __future__ import annotations

import polars as pl
import yaml

from tqc_dagster.core.export import criteria_text


def _table(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, tbl_rows=-1):
        return str(frame)


def _counts(splits: dict[str, pl.DataFrame], by: list[str]) -> pl.DataFrame:
    both = pl.concat([frame.select(by).with_columns(pl.lit(name).alias("split")) for name, frame in splits.items()])
    return (
        both.group_by(by + ["split"]).agg(pl.len().alias("rows"))
        .pivot(on="split", index=by, values="rows", sort_columns=True)
        .fill_null(0)
        .sort(by, nulls_last=False)
    )


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

"""The dataset cards (README.md) of an export folder, as Hugging Face `datasets` reads them.

The folder's card has YAML front matter with one config per JSON-lines format (`sft`, the default,
`llamafactory`, `bedrock`), each naming its train / test files, plus license and language tags; then
what is in it (counts per split by criterion, label, origin, translation model), what is missing and
why, the Bedrock job limits, and what made it (code version, input fingerprint, config).
`datasets` 5.2 picks one file format for every config of a card (from the first config's files), so
a parquet or CSV config cannot share the card with jsonl ones: grpo/, verl/ and qe/ each carry their
own card (`load_dataset("<folder>/grpo")`).
"""

from __future__ import annotations

from typing import NamedTuple

import polars as pl
import yaml

from tqc_dagster.core.balance import balance_group
from tqc_dagster.core.export import BEDROCK_MAX_RECORDS, BEDROCK_MIN_RECORDS, NOVA_2_LITE_MIN_RECORDS, criteria_text, language_code
from tqc_dagster.core.rubric import COMPLEX, SIMPLE, SIMPLE_CRITERIA, SYNTHETIC

ROOT_CONFIGS = ("sft", "llamafactory", "bedrock")
OWN_CARD = ("grpo", "verl", "qe")
WHY_EMPTY = {
    "train": "balanced_trainset has no sample of this target model (it keeps as many positives as negatives per balance "
    "group, so a target model without any negative sample has no training sample)",
    "test": "testset has no sample of this target model (no judged sample of it has its source on the test side)",
}


class DataFile(NamedTuple):
    """One data file of an export folder: its format, split, path relative to the folder, and lines (rows)."""

    format: str
    split: str
    path: str
    lines: int


def _table(frame: pl.DataFrame) -> str:
    # Every display option that an environment variable (POLARS_FMT_*, POLARS_TABLE_*) could change is pinned:
    # the card is the same bytes on every machine, and no name is cut.
    with pl.Config(
        tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True, tbl_rows=-1, tbl_cols=-1,
        fmt_str_lengths=1000, tbl_width_chars=65_000, tbl_cell_alignment="LEFT", tbl_cell_numeric_alignment="RIGHT",
        fmt_float="mixed", thousands_separator=False, decimal_separator=".",
    ):
        return str(frame)


def _counts(splits: dict[str, pl.DataFrame], by: list[str]) -> pl.DataFrame:
    """Rows per value of `by` (null stays null: a flawless sample has no criterion), one column per split."""
    tallies = [frame.group_by(by).agg(pl.len().alias(name)) for name, frame in splits.items()]
    table = tallies[0]
    for tally in tallies[1:]:
        table = table.join(tally, on=by, how="full", coalesce=True, nulls_equal=True)
    return table.with_columns(pl.col(name).fill_null(0) for name in splits).sort(by, nulls_last=False)


def languages(splits: dict[str, pl.DataFrame]) -> list[str]:
    """The card's language tags: `en` (the sources) and the ISO 639 codes of the samples' target_lang values."""
    codes = pl.concat([frame.select(language_code(pl.col("target_lang")).alias("code")) for frame in splits.values()])
    return sorted({"en"} | set(codes["code"].unique().to_list()) - {"und"})


def configs(files: list[DataFile], formats: tuple[str, ...], digests: dict[str, str], base: str = "") -> list[dict]:
    """Hugging Face `configs`: one per format that has files, with a `data_files` entry per split that has files
    (paths relative to the card, `base` cut off); the first is the default. Each config's `description` carries the
    digest of its files' bytes (`digests`, per format): `datasets` keys its cache on the card's configs alone, so without
    it two folders of the same name (exports/v1/simple and exports/v2/simple) would share one cache entry."""
    found = []
    for name in formats:
        splits: dict[str, list[str]] = {}
        for file in files:
            if file.format == name:
                splits.setdefault(file.split, []).append(file.path.removeprefix(base))
        if splits:
            data_files = [{"split": split, "path": paths[0] if len(paths) == 1 else paths} for split, paths in splits.items()]
            default = {"default": True} if not found else {}
            found.append({"config_name": name, **default, "description": f"{name} files, content sha256 {digests[name]}", "data_files": data_files})
    return found


def front_matter(license_id: str, language: list[str], pretty_name: str, config_list: list[dict]) -> str:
    """The YAML block Hugging Face reads at the top of a card (`---` lines around it); `configs` only when there are some."""
    meta = {"license": license_id, "language": language, "pretty_name": pretty_name, "tags": ["translation-quality-estimation"]}
    if config_list:
        meta["configs"] = config_list
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"


def notes(counts: dict[str, dict[str, int]], consensus_policy: str) -> list[str]:
    """What a reader must know: the consensus filter, empty splits and why, Bedrock lines left out and files cut."""
    agreed = "every judge version's agreement" if consensus_policy != "none" else "no agreement filter"
    found = [f"Consensus policy: `{consensus_policy}` ({agreed} on the judged training samples; the test set is never filtered)."]
    found += [
        f"Missing split `{split}`: no file is written or registered for it, because {WHY_EMPTY[split]}."
        for split, count in counts.items()
        if count["samples"] == 0
    ]
    left_out = sum(count["bedrock_left_out"] for count in counts.values())
    if left_out:
        found.append(f"{left_out} samples left out of bedrock/ because their text contains a keyword Bedrock reserves (any letter case).")
    return found


def bedrock_section(files: list[DataFile], seed: int) -> str:
    """The Bedrock job limits (AWS sources in core.export), the seeded rule that cuts a large split, and the lines per file,
    flagging a train file below Nova 2 Lite's minimum."""
    shards = [file for file in files if file.format == "bedrock"]
    lines = [
        f"- One customization job takes {BEDROCK_MIN_RECORDS} to {BEDROCK_MAX_RECORDS:,} records. A split of more than "
        f"{BEDROCK_MAX_RECORDS:,} lines is cut into the fewest files of at most {BEDROCK_MAX_RECORDS:,} (sizes differing by at most "
        f"one): lines are ranked by BLAKE2b of `\"{seed}|<sample_id>\"` (`export.seed` = {seed}) and cut in that order, so each file "
        "is a random part of the split and a valid job input on its own; inside a file lines keep their sample_id order.",
        f"- A validation file counts toward the {BEDROCK_MAX_RECORDS:,} records of a job (train + validation): use the test file "
        "as validation only where the two together stay within it.",
        f"- Nova 2 Lite (`lite-2.0`): at least {NOVA_2_LITE_MIN_RECORDS} and at most {BEDROCK_MAX_RECORDS:,} training records, and no "
        "validation set: train on the train file(s) alone; keep the test file for your own evaluation.",
        "- Reserved keywords (User:, Bot:, Assistant:, System:, <image>, <video>, [EOS], <unk>, in any letter case) are in no line.",
    ]
    lines += [f"- `{file.path}`: {file.lines:,} lines{_too_few(file)}" for file in shards]
    return "## Bedrock (Nova) customization\n\n" + "\n".join(lines)


def _too_few(file: DataFile) -> str:
    if file.split != "train":
        return ""
    if file.lines < BEDROCK_MIN_RECORDS:
        return f" (fewer than {BEDROCK_MIN_RECORDS}: no Nova model takes it)"
    return f" (fewer than {NOVA_2_LITE_MIN_RECORDS}: too few for Nova 2 Lite)" if file.lines < NOVA_2_LITE_MIN_RECORDS else ""


def synthetic_share(train: pl.DataFrame) -> pl.DataFrame:
    """Training samples per criterion (null: flawless), how many are synthetic and their share."""
    return (
        train.group_by("criterion")
        .agg(pl.len().alias("train"), (pl.col("origin") == SYNTHETIC).sum().alias("synthetic"))
        .with_columns((pl.col("synthetic") / pl.col("train")).round(3).alias("synthetic_share"))
        .sort("criterion", nulls_last=False)
    )


def test_groups(test: pl.DataFrame, target_model: str, min_samples: int) -> pl.DataFrame:
    """The test split per criterion group (each simple criterion; the complex model as one): samples and labels,
    and `problem` where a group has fewer than `min_samples` samples or a single label (null when it is fine).
    Every simple criterion is listed, also one without any test sample."""
    groups = [f"{SIMPLE}/{c}" for c in SIMPLE_CRITERIA] if target_model == SIMPLE else [COMPLEX]
    tally = (
        test.with_columns(balance_group())
        .group_by("balance_group")
        .agg(pl.len().alias("test"), (pl.col("label") == "negative").sum().alias("negative"), (pl.col("label") == "positive").sum().alias("positive"))
    )
    few = pl.concat_str(pl.lit("fewer than "), pl.lit(str(min_samples)), pl.lit(" samples"))
    one_label = pl.concat_str(pl.lit("a single label ("), pl.when(pl.col("negative") > 0).then(pl.lit("negative")).otherwise(pl.lit("positive")), pl.lit(")"))
    return (
        pl.DataFrame({"balance_group": groups}).join(tally, on="balance_group", how="left")
        .with_columns(pl.col("test", "negative", "positive").fill_null(0).cast(pl.Int64))
        .with_columns(
            pl.concat_str(
                [pl.when(pl.col("test") < min_samples).then(few), pl.when((pl.col("test") > 0) & ((pl.col("negative") == 0) | (pl.col("positive") == 0))).then(one_label)],
                separator=", ", ignore_nulls=True,
            ).replace("", None).alias("problem")
        )
        .rename({"balance_group": "criterion_group"})
    )


def synthesis_section(train: pl.DataFrame, target_model: str, max_share: float | None, unfilled: pl.DataFrame | None) -> str:
    """What the training split owes to synthesis: the synthetic share per criterion, and the rare groups synthesis
    left short with the reason (`unfilled`: the synthetic_samples report rows with `unfilled` > 0; None: not recorded)."""
    lines = ["## Synthetic samples"]
    total, made = train.height, train.filter(pl.col("origin") == SYNTHETIC).height
    cap = f"at most {max_share:g} of each balance group" if max_share is not None else "no cap"
    lines.append(f"Synthetic share of the training split: {made} of {total} samples ({made / max(1, total):.1%}); "
                 f"`balance.max_synthetic_share`: {cap}. Synthetic samples are never in the test split.")
    if total:
        lines.append(_table(synthetic_share(train)))
    if target_model != SIMPLE:
        lines.append("The complex model is not synthesized.")
    elif unfilled is None:
        lines.append("Rare groups left short by synthesis: not recorded (see the `synthetic_samples` metadata).")
    elif unfilled.is_empty():
        lines.append("Every rare group (product_category, criterion, score_bucket) reached `synthesis.min_samples`.")
    else:
        lines.append(f"Rare groups left short by synthesis: {unfilled.height} groups, {int(unfilled['unfilled'].sum())} samples short; "
                     "their criterion and severity are under-represented in training:")
        lines.append(_table(unfilled))
    return "\n\n".join(lines)


def test_section(test: pl.DataFrame, target_model: str, min_samples: int) -> str:
    """The test split per criterion group, with a warning for each group too small or with one label to measure."""
    groups = test_groups(test, target_model, min_samples)
    flagged = groups.filter(pl.col("problem").is_not_null())
    lines = ["## Test split by criterion", _table(groups.drop("problem"))]
    if flagged.is_empty():
        lines.append(f"Every test criterion group has both labels and at least {min_samples} samples (`checks.min_test_group_samples`).")
    else:
        lines.append("\n".join(
            f"- Warning: test group `{row['criterion_group']}` has {row['problem']} ({row['test']} samples: {row['negative']} negative, "
            f"{row['positive']} positive): its precision and recall cannot be measured reliably (`checks.min_test_group_samples`: {min_samples})."
            for row in flagged.iter_rows(named=True)
        ))
    return "\n\n".join(lines)


def provenance_section(code: dict[str, str], inputs: dict, config: dict) -> str:
    """The "What made it" section: the code version (provenance.code_version), the input fingerprint and its files
    (provenance.input_fingerprint) and the config (provenance.card_config)."""
    listed = "".join(f"\n| `{file['path']}` | {file['size']} | {file['version']} |" for file in inputs["files"])
    return "\n\n".join([
        "## What made it",
        f"Code: tqc_dagster {code['package']}, git commit `{code['commit']}`.",
        f"Input fingerprint `{inputs['sha256']}`: the {len(inputs['files'])} batch-output files matching `{inputs['pattern']}` (size in bytes; "
        "version: S3 ETag or local modification time in ns), paths relative to the storage root. The creation time is in the "
        "Dagster materialization metadata of `exports` (`created_at`), not here, so reruns write identical files.",
        "| path | size | version |\n|---|---|---|" + listed,
        "## Config that made it\n\nPaths relative to the storage root (local paths outside it on an S3 root are redacted).\n\n"
        "```yaml\n" + yaml.safe_dump(config, sort_keys=True, allow_unicode=True) + "```",
    ])


def dataset_card(judge_version: str, target_model: str, splits: dict[str, pl.DataFrame], files: list[DataFile], digests: dict[str, str], what: dict[str, str], card_notes: list[str], extra: list[str], license_id: str) -> str:
    """The folder's card: front matter (configs of ROOT_CONFIGS, license, languages), counts per split by criterion,
    label, origin and translation model, the files (`what`: a description per format), notes, then `extra` sections."""
    title = f"tqc {judge_version} {target_model}"
    totals = " / ".join(f"{name}: {frame.height}" for name, frame in splits.items())
    listed = [f"- `{file.path}` ({file.lines:,} rows): {what[file.format]}" for file in files]
    if any(file.format == "llamafactory" for file in files):
        listed.append(f"- `llamafactory/dataset_info.json`: LLaMA-Factory's registration of those files (`tqc_{judge_version}_{target_model}_<split>`)")
    listed += [f"- `{name}/README.md`: the card of `{name}/`, with its own `{name}` config" for name in OWN_CARD if any(file.format == name for file in files)]
    sections = [
        f"# {title} quality-check fine-tuning set",
        f"Judge version `{judge_version}`, target model `{target_model}`. Samples: {totals}.",
        f"Criteria (scores 0-5):\n\n```\n{criteria_text(target_model)}\n```",
        "## Loading\n\n`datasets.load_dataset(\"<this folder>\")` gives the `sft` config; `load_dataset(\"<this folder>\", name)` takes name "
        + ", ".join(f"`{name}`" for name in ROOT_CONFIGS)
        + ". The parquet and CSV formats have their own cards: "
        + ", ".join(f'`load_dataset("<this folder>/{name}")`' for name in OWN_CARD)
        + ".",
        "## Counts by criterion and label\n\n" + _table(_counts(splits, ["criterion", "label"])),
        "## Counts by origin\n\n" + _table(_counts(splits, ["origin"])),
        "## Counts by translation model\n\n" + _table(_counts(splits, ["model"])),
        "## Files\n\n" + "\n".join(listed),
    ]
    if card_notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {note}" for note in card_notes))
    body = "\n\n".join(sections + extra) + "\n"
    return front_matter(license_id, languages(splits), title, configs(files, ROOT_CONFIGS, digests)) + body


def format_card(judge_version: str, target_model: str, name: str, files: list[DataFile], digests: dict[str, str], what: str, language: list[str], license_id: str) -> str:
    """The card of one parquet or CSV format's folder (`<name>/README.md`): its one config, and where the rest is."""
    title = f"tqc {judge_version} {target_model}"
    body = f"# {title}: {name}\n\n{what}.\n\nCounts, notes and what made it: the export folder's card, `../README.md`.\n"
    return front_matter(license_id, language, f"{title} ({name})", configs(files, (name,), digests, base=f"{name}/")) + body

"""One target model's export folder: writing every format into it, and reading every file back.

Pure files and polars (no Dagster): the exports step writes into a staging folder and verifies it
before publishing; the exports checks verify what is published the same way. The layout (which file
holds how many lines) is a function of the per-split counts alone (`layout`), so the writer, the
verifier and the cards cannot disagree about it. An empty split has no file at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import polars as pl

from tqc_dagster.config import TqcConfig
from tqc_dagster.core import export, export_qe, export_rl
from tqc_dagster.core.dataset_card import OWN_CARD, DataFile, bedrock_section, dataset_card, format_card, languages, notes, synthesis_section, test_section

SPLITS = ("train", "test")
_EMPTY = pl.DataFrame(schema={"criterion": pl.Int64, "origin": pl.String, "label": pl.String, "target_model": pl.String})


class Format(NamedTuple):
    suffix: str
    what: str
    problems: Callable[[pl.DataFrame], int]


FORMATS = {
    "sft": Format("jsonl", "chat `messages` (system, user, assistant) for TRL's SFTTrainer and Hugging Face datasets", export.chat_problems),
    "llamafactory": Format("jsonl", "LLaMA-Factory sharegpt (`conversations`, `system`), registered in llamafactory/dataset_info.json", export.sharegpt_problems),
    "bedrock": Format("jsonl", "Amazon Bedrock (Nova) customization, bedrock-conversation-2024, at most 20,000 lines per file", export.bedrock_problems),
    "grpo": Format("parquet", "RL for TRL's GRPOTrainer: `prompt` (chat list: system, user), `system`, `problem`, `answer` (ratings as text), `ratings` (list of floats)", export_rl.grpo_problems),
    "verl": Format("parquet", "RL in verl's layout: `data_source`, `prompt` (chat list), `ability`, `reward_model` {style, ground_truth}, `extra_info` {split, index, sample_id}", export_rl.verl_problems),
    "qe": Format("csv", "QE regression (COMET style): `src`, `mt`, `score` (mean of the 7 scores / 5), `criterion_0`..`criterion_6`, `lp`, `split`", export_qe.qe_problems),
}
WRITERS = {"jsonl": pl.DataFrame.write_ndjson, "parquet": pl.DataFrame.write_parquet, "csv": pl.DataFrame.write_csv}
READERS = {"jsonl": pl.read_ndjson, "parquet": pl.read_parquet, "csv": partial(pl.read_csv, schema_overrides={"src": pl.String, "mt": pl.String, "lp": pl.String, "split": pl.String})}


def dataset_name(judge_version: str, target_model: str) -> str:
    """`tqc_<judge_version>_<target_model>`: the LLaMA-Factory registration prefix and verl's data_source."""
    return f"tqc_{judge_version}_{target_model}"


def target_splits(balanced_trainset: pl.DataFrame, testset: pl.DataFrame, target_model: str) -> dict[str, pl.DataFrame]:
    """The samples of one target model per split, in the order they are written (by sample_id)."""
    return {
        "train": balanced_trainset.filter(pl.col("target_model") == target_model).sort("sample_id"),
        "test": testset.filter(pl.col("target_model") == target_model).sort("sample_id"),
    }


def export_prompts(samples: pl.DataFrame, target_model: str, config: TqcConfig) -> pl.DataFrame:
    """export.prompts with the config's templates: `sample_id`, `system`, `user`, `assistant` per sample."""
    templates = config.export
    return export.prompts(samples, target_model, templates.system_prompts[target_model], templates.user_template, templates.assistant_template)


def expected_counts(splits: dict[str, pl.DataFrame], target_model: str, config: TqcConfig) -> dict:
    """What write_export writes per split: samples, Bedrock lines (the samples without a reserved keyword), and left out."""
    counts = {}
    for split, samples in splits.items():
        lines, left_out = export.bedrock(export_prompts(samples, target_model, config))
        counts[split] = {"samples": samples.height, "bedrock_lines": lines.height, "bedrock_left_out": left_out}
    return counts


def layout(counts: dict[str, dict[str, int]]) -> list[DataFile]:
    """Every data file of a folder with these per-split counts: `<format>/<split>.<suffix>` per format and non-empty
    split, Bedrock cut into shards of at most 20,000 lines (export.shard_paths); none for an empty split."""
    files = []
    for split, count in counts.items():
        for name, form in FORMATS.items():
            if name == "bedrock":
                shards = zip(export.shard_paths(name, split, count["bedrock_lines"]), export.shard_sizes(count["bedrock_lines"]))
                files += [DataFile(name, split, path, lines) for path, lines in shards]
            elif count["samples"]:
                files.append(DataFile(name, split, f"{name}/{split}.{form.suffix}", count["samples"]))
    return files


def split_frames(samples: pl.DataFrame, split: str, source: str, target_model: str, config: TqcConfig) -> tuple[list[pl.DataFrame], dict[str, int]]:
    """Every file of one split in layout order (one frame per format, Bedrock per shard; none for an empty split), and
    its counts: samples, Bedrock lines, samples left out of Bedrock. `source`: verl's data_source."""
    if samples.height == 0:
        return [], {"samples": 0, "bedrock_lines": 0, "bedrock_left_out": 0}
    prompts = export_prompts(samples, target_model, config)
    shards, left_out = export.bedrock_shards(prompts, config.export.seed)
    by_format = {
        "sft": [export.sft(prompts)],
        "llamafactory": [export.sharegpt(prompts)],
        "bedrock": shards,
        "grpo": [export_rl.grpo(samples, prompts, target_model)],
        "verl": [export_rl.verl(samples, prompts, target_model, source, split)],
        "qe": [export_qe.qe(samples, split)],
    }
    counts = {"samples": samples.height, "bedrock_lines": sum(shard.height for shard in shards), "bedrock_left_out": left_out}
    return [frame for name in FORMATS for frame in by_format[name]], counts


def write_export(folder: Path, judge_version: str, target_model: str, splits: dict[str, pl.DataFrame], config: TqcConfig, provenance: list[str],
                 unfilled: pl.DataFrame | None = None) -> dict:
    """Write every format of one target model into `folder`, the LLaMA-Factory registration and the cards
    (`provenance`: the card's sections on what made it; `unfilled`: the rare groups synthesis left short, None when
    not recorded); returns samples, Bedrock lines and left out per split."""
    counts, frames = {}, []
    for split, samples in splits.items():
        written, counts[split] = split_frames(samples, split, dataset_name(judge_version, target_model), target_model, config)
        frames += written
    files = layout(counts)
    for file, frame in zip(files, frames, strict=True):
        (folder / file.path).parent.mkdir(exist_ok=True)
        WRITERS[FORMATS[file.format].suffix](frame, folder / file.path)
    registered = {file.split: Path(file.path).name for file in files if file.format == "llamafactory"}
    if registered:
        info = export.sharegpt_dataset_info(dataset_name(judge_version, target_model), registered)
        (folder / "llamafactory/dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    what = {name: form.what for name, form in FORMATS.items()}
    digests = content_digests(folder, files)
    coverage = [
        synthesis_section(splits.get("train", _EMPTY), target_model, config.balance.max_synthetic_share, unfilled),
        test_section(splits.get("test", _EMPTY), target_model, config.checks.min_test_group_samples),
    ]
    extra = [*coverage, bedrock_section(files, config.export.seed), *provenance]
    card_notes = notes(counts, config.consensus.policy)
    (folder / "README.md").write_text(dataset_card(judge_version, target_model, splits, files, digests, what, card_notes, extra, config.export.license))
    for name in OWN_CARD:
        if (folder / name).is_dir():
            card = format_card(judge_version, target_model, name, files, digests, what[name], languages(splits), config.export.license)
            (folder / name / "README.md").write_text(card)
    return counts


def content_digests(folder: Path, files: list[DataFile]) -> dict[str, str]:
    """Per format, the first 16 hex digits of the SHA-256 of its files' bytes in layout order."""
    digests: dict[str, hashlib._Hash] = {}
    for file in files:
        digests.setdefault(file.format, hashlib.sha256()).update((folder / file.path).read_bytes())
    return {name: digest.hexdigest()[:16] for name, digest in digests.items()}


def _read(path: Path) -> pl.DataFrame | None:
    """The rows of a data file; None for a 0-byte file (polars cannot read one; it has no rows to check)."""
    return READERS[path.suffix.lstrip(".")](path) if path.stat().st_size else None


def verify_export(folder: Path, counts: dict) -> pl.DataFrame:
    """Read every data file back against the layout of `counts` (write_export's result): per file, lines, expected
    lines and format problems. A data file the layout does not name (an empty split's) is one problem more; a
    file it names and the folder lacks reads as 0 lines."""
    expected = {file.path: file for file in layout(counts)}
    present = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.suffix.lstrip(".") in READERS and path.name != "dataset_info.json"}
    rows = []
    for path in sorted(expected.keys() | present):
        frame = _read(folder / path) if path in present else None
        known_format = FORMATS.get(path.split("/")[0])
        problems = 0 if frame is None or known_format is None else known_format.problems(frame)
        rows.append((path, 0 if frame is None else frame.height, expected[path].lines if path in expected else 0, problems + (path not in expected)))
    return pl.DataFrame(rows, schema={"file": pl.String, "lines": pl.Int64, "expected": pl.Int64, "problems": pl.Int64}, orient="row")


def verify_folders(root: Path, expected: dict[str, dict]) -> pl.DataFrame:
    """Every target model's folder under `root` (`root/<target_model>/`) read back against its expected counts
    ({target_model: write_export's result}): per file, target_model, file, lines, expected and problems."""
    tables = [verify_export(root / target_model, counts).with_columns(pl.lit(target_model).alias("target_model")) for target_model, counts in expected.items()]
    return pl.concat(tables).select("target_model", "file", "lines", "expected", "problems")


def empty_splits(expected: dict[str, dict]) -> list[str]:
    """`<target_model> <split>` for every split without a sample ({target_model: counts} as verify_folders takes)."""
    return [f"{target_model} {split}" for target_model, counts in expected.items() for split, count in counts.items() if count["samples"] == 0]

"""One target model's export folder: writing every format into it, and reading every file back.

Pure files and polars (no Dagster): the exports step writes into a staging folder and verifies it
before publishing; the exports checks verify what is published the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tqc_dagster.config import TqcConfig
from tqc_dagster.core import export
from tqc_dagster.core.dataset_card import dataset_card

SPLITS = ("train", "test")
FILES = {
    "sft/{split}.jsonl": "chat `messages` (system/user/assistant) for TRL and Hugging Face datasets",
    "llamafactory/{split}.jsonl": "LLaMA-Factory sharegpt (`conversations`, `system`); see dataset_info.json",
    "bedrock/{split}.jsonl": "Amazon Bedrock (Nova) customization, bedrock-conversation-2024",
    "grpo/{split}.parquet": "RL (GRPO): `system`, `problem`, `answer`",
}


def target_splits(balanced_trainset: pl.DataFrame, testset: pl.DataFrame, target_model: str) -> dict[str, pl.DataFrame]:
    """The samples of one target model per split, in the order they are written (by sample_id)."""
    return {
        "train": balanced_trainset.filter(pl.col("target_model") == target_model).sort("sample_id"),
        "test": testset.filter(pl.col("target_model") == target_model).sort("sample_id"),
    }


def export_prompts(samples: pl.DataFrame, target_model: str, config: TqcConfig) -> pl.DataFrame:
    templates = config.export
    return export.prompts(samples, target_model, templates.system_prompts[target_model], templates.user_template, templates.assistant_template)


def expected_counts(splits: dict[str, pl.DataFrame], target_model: str, config: TqcConfig) -> dict:
    """What write_export writes per split: samples, and Bedrock lines (the samples without a forbidden substring)."""
    return {split: {"samples": samples.height, "bedrock_lines": export.bedrock(export_prompts(samples, target_model, config))[0].height} for split, samples in splits.items()}


def write_export(folder: Path, judge_version: str, target_model: str, splits: dict[str, pl.DataFrame], config: TqcConfig) -> dict:
    """Write every format of one target model into `folder`; returns rows written and left out per file."""
    written: dict[str, dict[str, int]] = {}
    for directory in ("sft", "llamafactory", "bedrock", "grpo"):
        (folder / directory).mkdir()
    for split, samples in splits.items():
        prompts = export_prompts(samples, target_model, config)
        export.sft(prompts).write_ndjson(folder / f"sft/{split}.jsonl")
        export.sharegpt(prompts).write_ndjson(folder / f"llamafactory/{split}.jsonl")
        bedrock_lines, left_out = export.bedrock(prompts)
        bedrock_lines.write_ndjson(folder / f"bedrock/{split}.jsonl")
        export.grpo(samples, prompts, target_model).write_parquet(folder / f"grpo/{split}.parquet")
        written[split] = {"samples": samples.height, "bedrock_lines": bedrock_lines.height, "bedrock_left_out": left_out}
    name = f"tqc_{judge_version}_{target_model}"
    info = export.sharegpt_dataset_info(name, {split: f"{split}.jsonl" for split in splits})
    (folder / "llamafactory/dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    left_out = sum(counts["bedrock_left_out"] for counts in written.values())
    policy = config.consensus.policy
    agreed = "every judge version's agreement" if policy != "none" else "no agreement filter"
    notes = [f"Consensus policy: `{policy}` ({agreed} on the judged training samples; the test set is never filtered)."]
    if left_out:
        notes.append(f"{left_out} samples left out of bedrock/ because their text contains a substring Bedrock rejects ({', '.join(export.BEDROCK_FORBIDDEN)}).")
    files = {path.format(split=split): what for path, what in FILES.items() for split in splits}
    files["llamafactory/dataset_info.json"] = f"LLaMA-Factory dataset registrations ({', '.join(info)})"
    card = dataset_card(judge_version, target_model, splits, files, config.model_dump(mode="json", exclude={"config_path"}), notes)
    (folder / "README.md").write_text(card)
    return written


def verify_export(folder: Path, written: dict) -> pl.DataFrame:
    """Read every file back: per file, lines, expected lines and format problems."""
    checks = {"sft": export.chat_problems, "llamafactory": export.sharegpt_problems, "bedrock": export.bedrock_problems}
    rows = []
    for split, counts in written.items():
        for kind, problems in checks.items():
            path = folder / f"{kind}/{split}.jsonl"
            expected = counts["bedrock_lines"] if kind == "bedrock" else counts["samples"]
            # polars cannot infer a schema from an empty file; an empty split has nothing to check.
            lines = pl.read_ndjson(path) if path.stat().st_size else None
            rows.append((f"{kind}/{split}.jsonl", 0 if lines is None else lines.height, expected, 0 if lines is None else problems(lines)))
        grpo = pl.read_parquet(folder / f"grpo/{split}.parquet")
        rows.append((f"grpo/{split}.parquet", grpo.height, counts["samples"], export.grpo_problems(grpo)))
    return pl.DataFrame(rows, schema={"file": pl.String, "lines": pl.Int64, "expected": pl.Int64, "problems": pl.Int64}, orient="row")


def verify_folders(root: Path, expected: dict[str, dict]) -> pl.DataFrame:
    """Every target model's folder under `root` (`root/<target_model>/`) read back against its expected counts
    ({target_model: write_export's result}): per file, target_model, file, lines, expected and problems."""
    tables = [verify_export(root / target_model, counts).with_columns(pl.lit(target_model).alias("target_model")) for target_model, counts in expected.items()]
    return pl.concat(tables).select("target_model", "file", "lines", "expected", "problems")


"""exports: the fine-tuning files of one judge version, both translation models together, per target model."""

import json
from pathlib import Path

import dagster as dg
import polars as pl

from tqc_dagster.assets import OWNERS
from tqc_dagster.assets.metadata import markdown
from tqc_dagster.assets.samples import BALANCED, TESTSET, TRAINSET
from tqc_dagster.checks import check_spec
from tqc_dagster.config import TqcConfig
from tqc_dagster.core import export
from tqc_dagster.core.dataset_card import dataset_card
from tqc_dagster.core.rubric import TARGET_MODELS
from tqc_dagster.core.split import shared_sources
from tqc_dagster.partitions import FOLLOW_UPSTREAM, both_models_of_a_judge_version
from tqc_dagster.stores import join, store_for

EXPORTS = "exports"
SPLITS = ("train", "test")
FILES = {
    "sft/{split}.jsonl": "chat `messages` (system/user/assistant) for TRL and Hugging Face datasets",
    "llamafactory/{split}.jsonl": "LLaMA-Factory sharegpt (`conversations`, `system`); see dataset_info.json",
    "bedrock/{split}.jsonl": "Amazon Bedrock (Nova) customization, bedrock-conversation-2024",
    "grpo/{split}.parquet": "RL (GRPO): `system`, `problem`, `answer`",
}


def export_folder(storage_root: str, judge_version: str, target_model: str) -> str:
    return join(storage_root, EXPORTS, judge_version, target_model)


def write_export(folder: Path, judge_version: str, target_model: str, splits: dict[str, pl.DataFrame], config: TqcConfig) -> dict:
    """Write every format of one target model into `folder`; returns rows written and left out per file."""
    templates = config.export
    written: dict[str, dict[str, int]] = {}
    for directory in ("sft", "llamafactory", "bedrock", "grpo"):
        (folder / directory).mkdir()
    for split, samples in splits.items():
        prompts = export.prompts(samples, target_model, templates.system_prompts[target_model], templates.user_template, templates.assistant_template)
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


class ExportRejected(Exception):
    """The staged export failed verification, so it was not published."""


def export_check_results(files: pl.DataFrame, leaked: pl.DataFrame) -> list[dg.AssetCheckResult]:
    """The export checks, computed on the staged files before anything is published."""
    problems = int(files["problems"].sum())
    mismatched = files.filter(pl.col("lines") != pl.col("expected"))
    return [
        dg.AssetCheckResult(
            check_name="no_source_on_both_sides",
            passed=leaked.height == 0,
            description=None if leaked.height == 0 else f"{leaked.height} normalized source titles are in train and test of this judge "
            "version (see examples): the split is not leak-free; a bug in the split, or a changed split seed between partitions.",
            metadata={"shared_sources": leaked.height, "examples": markdown(leaked)},
        ),
        dg.AssetCheckResult(
            check_name="lines_follow_format",
            passed=problems == 0,
            description=None if problems == 0 else f"{problems} export lines break their format (see the files table of the failed run): "
            "a template or writer bug.",
            metadata={"problems": problems, "files": markdown(files, 40)},
        ),
        dg.AssetCheckResult(
            check_name="counts_match_sources",
            passed=mismatched.height == 0,
            description=None if mismatched.height == 0 else f"{mismatched.height} export files do not hold exactly the samples of "
            "their source frame (see mismatched_files): lines were lost or duplicated while writing.",
            metadata={"mismatched_files": markdown(mismatched)},
        ),
    ]


def build_export_assets(config: TqcConfig, partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    both_models = both_models_of_a_judge_version()

    @dg.asset(
        name=EXPORTS,
        group_name="exports",
        owners=OWNERS["exports"],
        automation_condition=FOLLOW_UPSTREAM,
        partitions_def=partitions,
        ins={name: dg.AssetIn(partition_mapping=both_models) for name in (BALANCED, TESTSET, TRAINSET)},
        description="Fine-tuning files per target model (simple, complex) of one judge version, both translation "
        "models together: sft/, llamafactory/, bedrock/, grpo/ and a dataset card. Train from balanced_trainset, test from testset. "
        "Staged, verified and only then published, both target models at once; a failed verification publishes nothing.",
        check_specs=[
            check_spec(
                "no_source_on_both_sides",
                EXPORTS,
                "No normalized source title is in the train and the test side anywhere in the judge version (both models).",
                partitions,
            ),
            check_spec("lines_follow_format", EXPORTS, "Every export line parses and follows its format: roles alternate, start with the user and end with the assistant; no Bedrock-forbidden substring.", partitions),
            check_spec("counts_match_sources", EXPORTS, "Each export file holds exactly the samples of the frame it came from (Bedrock: minus the lines left out and counted).", partitions),
        ],
    )
    def exports(context: dg.AssetExecutionContext, balanced_trainset: pl.DataFrame, testset: pl.DataFrame, trainset: pl.DataFrame):
        judge_version = context.partition_key
        leaked = shared_sources(trainset, testset)
        staged: list[pl.DataFrame] = []  # the files table of the staged export, filled by write()

        def write(staging: Path) -> None:
            """Write every target model's folder, read every file back, and refuse to publish on any problem."""
            for target_model in TARGET_MODELS:
                splits = {
                    "train": balanced_trainset.filter(pl.col("target_model") == target_model).sort("sample_id"),
                    "test": testset.filter(pl.col("target_model") == target_model).sort("sample_id"),
                }
                folder = staging / target_model
                folder.mkdir()
                written = write_export(folder, judge_version, target_model, splits, config)
                staged.append(verify_export(folder, written).with_columns(pl.lit(target_model).alias("target_model")))
            staged[:] = [pl.concat(staged).select("target_model", "file", "lines", "expected", "problems")]
            if not all(result.passed for result in export_check_results(staged[0], leaked)):
                raise ExportRejected

        folder = join(config.storage_root, EXPORTS, judge_version)
        try:
            store_for(config.storage_root, config.s3).publish_folder(folder, write, markers=TARGET_MODELS)
        except ExportRejected:
            yield from export_check_results(staged[0], leaked)
            raise dg.Failure(
                description=f"The exports of {judge_version} failed verification and were not published; {folder} keeps "
                "the previous verified export, if any. The failed checks say what is wrong.",
                allow_retries=False,
            ) from None
        yield dg.MaterializeResult(
            metadata={
                "folder": dg.MetadataValue.path(folder),
                "files": markdown(staged[0], 40),
                "train_samples": balanced_trainset.height,
                "test_samples": testset.height,
            }
        )
        yield from export_check_results(staged[0], leaked)

    return [exports]

"""RL exports: GRPO rows that TRL's GRPOTrainer takes as they are, and the same samples in verl's layout.

Both carry the prompt as a chat list (system, user) and the reference ratings; the reward that scores a
completion against them is tqc_dagster.rewards. Built with polars expressions, one row per sample, in the
order of the prompts frame (by sample_id).
"""

from __future__ import annotations

import polars as pl

from tqc_dagster.core.export import any_blank, chat_prompt, own_scores, prompt_problems, score_text
from tqc_dagster.core.rubric import MAX_SCORE

GRPO_COLUMNS = ["prompt", "system", "problem", "answer", "ratings"]
VERL_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]
ABILITY = "translation_quality_check"
REWARD_STYLE = "rule"


def grpo(samples: pl.DataFrame, prompts_frame: pl.DataFrame, target_model: str) -> pl.DataFrame:
    """GRPO rows for TRL (GRPOTrainer reads `prompt`, a chat list, and hands every other column to the reward
    functions): `prompt` [{role: system}, {role: user}], the same text as `system` and `problem`, the reference
    ratings as text (`answer`, e.g. "[5.0, 4.5]", as the assistant turn writes them) and as numbers (`ratings`,
    list of floats in [0, 5], the target model's criteria in rubric order)."""
    references = samples.select(score_text(target_model).alias("answer"), own_scores(target_model).cast(pl.List(pl.Float64)).alias("ratings"))
    return prompts_frame.select(chat_prompt().alias("prompt"), "system", pl.col("user").alias("problem")).with_columns(references)


def verl(samples: pl.DataFrame, prompts_frame: pl.DataFrame, target_model: str, data_source: str, split: str) -> pl.DataFrame:
    """verl's RL dataset layout: `data_source` (e.g. tqc_v1_simple, what verl's reward dispatch keys on), `prompt`
    (chat list, system and user), `ability`, `reward_model` {style: "rule", ground_truth: the reference ratings as
    text}, `extra_info` {split, index (row number in the file, from 0), sample_id}."""
    return prompts_frame.select(
        pl.lit(data_source).alias("data_source"),
        chat_prompt().alias("prompt"),
        pl.lit(ABILITY).alias("ability"),
        pl.struct(pl.lit(REWARD_STYLE).alias("style"), samples.select(score_text(target_model)).to_series().alias("ground_truth")).alias("reward_model"),
        pl.struct(pl.lit(split).alias("split"), pl.int_range(pl.len(), dtype=pl.Int64).alias("index"), "sample_id").alias("extra_info"),
    )


def grpo_problems(rows: pl.DataFrame) -> int:
    """Rows that break the GRPO contract: other columns than GRPO_COLUMNS (then every row), a prompt that is not
    system + user, a blank text, ratings missing or out of [0, 5]."""
    if rows.columns != GRPO_COLUMNS:
        return max(rows.height, 1)
    in_range = pl.element().is_between(0, MAX_SCORE).fill_null(False)  # a missing rating is no rating
    ratings_ok = (pl.col("ratings").list.len() > 0) & pl.col("ratings").list.eval(in_range).list.all()
    broken = prompt_problems(pl.col("prompt")) | any_blank(pl.col("system"), pl.col("problem"), pl.col("answer")) | ~ratings_ok.fill_null(False)
    return rows.select(broken.sum()).item()


def verl_problems(rows: pl.DataFrame) -> int:
    """Rows that break verl's layout: other columns than VERL_COLUMNS (then every row), a prompt that is not system +
    user, a blank data source, ability or ground truth, a reward style other than "rule", an index that is not the row number."""
    if rows.columns != VERL_COLUMNS:
        return max(rows.height, 1)
    reward, extra = pl.col("reward_model").struct, pl.col("extra_info").struct
    broken = (
        prompt_problems(pl.col("prompt"))
        | any_blank(pl.col("data_source"), pl.col("ability"), reward.field("ground_truth"))
        | (reward.field("style") != REWARD_STYLE).fill_null(True)
        | (extra.field("index") != pl.int_range(pl.len())).fill_null(True)
    )
    return rows.select(broken.sum()).item()

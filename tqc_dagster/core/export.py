"""Fine-tuning exports: chat SFT (TRL / Hugging Face), LLaMA-Factory sharegpt, Bedrock (Nova) customization, GRPO.

Prompts come from the config's templates; every frame is built with polars expressions, one
row per sample, so an export line is traceable to its sample by row order.
"""

from __future__ import annotations

import string

import polars as pl

from tqc_dagster.core.rubric import COMPLEX, COMPLEX_CRITERION, CRITERIA, SIMPLE, SIMPLE_CRITERIA

BEDROCK_SCHEMA_VERSION = "bedrock-conversation-2024"
# Bedrock rejects a customization job whose text contains any of these.
BEDROCK_FORBIDDEN = ["User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]"]

CRITERIA_OF = {SIMPLE: list(SIMPLE_CRITERIA), COMPLEX: [COMPLEX_CRITERION]}
SAMPLE_FIELDS = ("source", "translation", "target_lang", "product_category", "thought")
# Every field a template may name: the sample's own, and three made per target model (see prompts).
TEMPLATE_FIELDS = frozenset(SAMPLE_FIELDS) | {"criteria", "scores", "all_scores"}


class TemplateError(ValueError):
    """A prompt template names a field that does not exist."""


def template(text: str, fields: dict[str, pl.Expr], where: str) -> pl.Expr:
    """A `{field}` template as a polars string expression (literal braces as `{{` `}}`)."""
    parts: list[pl.Expr] = []
    for literal, field, _, _ in string.Formatter().parse(text):
        if literal:
            parts.append(pl.lit(literal))
        if field is not None:
            if field not in fields:
                raise TemplateError(f"{where}: unknown field {{{field}}}; known: {sorted(fields)}")
            parts.append(fields[field])
    return pl.concat_str(parts) if parts else pl.lit("")


def _score_list(scores: pl.Expr) -> pl.Expr:
    """`[5.0, 4.5]`: every score with at least one decimal, as the judge writes them."""
    return pl.concat_str(pl.lit("["), scores.list.eval(pl.element().round(2).cast(pl.String)).list.join(", "), pl.lit("]"))


def criteria_text(target_model: str) -> str:
    return "\n".join(f"{i}. {CRITERIA[i]}" for i in CRITERIA_OF[target_model])


def prompts(samples: pl.DataFrame, target_model: str, system_template: str, user_template: str, assistant_template: str) -> pl.DataFrame:
    """`system`, `user`, `assistant` text per sample, plus `sample_id`."""
    own_scores = pl.concat_list([pl.col("scores").list.get(i) for i in CRITERIA_OF[target_model]])
    # target_lang may be absent from a judge prompt; a null field would null the whole text.
    fields = {name: pl.col(name).cast(pl.String).fill_null("unknown" if name == "target_lang" else "") for name in SAMPLE_FIELDS}
    fields |= {"criteria": pl.lit(criteria_text(target_model)), "scores": _score_list(own_scores), "all_scores": _score_list(pl.col("scores"))}
    return samples.select(
        "sample_id",
        template(system_template, fields, f"export.system_prompts.{target_model}").alias("system"),
        template(user_template, fields, "export.user_template").alias("user"),
        template(assistant_template, fields, "export.assistant_template").alias("assistant"),
    )


def _message(role: str, content: str) -> pl.Expr:
    return pl.struct(pl.lit(role).alias("role"), pl.col(content).alias("content"))


def sft(prompts_frame: pl.DataFrame) -> pl.DataFrame:
    """Chat `messages` (system, user, assistant): loads with TRL's SFTTrainer and `datasets`."""
    return prompts_frame.select(pl.concat_list(_message("system", "system"), _message("user", "user"), _message("assistant", "assistant")).alias("messages"))


def _turn(who: str, column: str) -> pl.Expr:
    return pl.struct(pl.lit(who).alias("from"), pl.col(column).alias("value"))


def _text_block(column: str) -> pl.Expr:
    return pl.concat_list(pl.struct(pl.col(column).alias("text")))


def sharegpt(prompts_frame: pl.DataFrame) -> pl.DataFrame:
    """LLaMA-Factory's sharegpt layout: `conversations` of human/gpt turns and a `system` column."""
    return prompts_frame.select(pl.concat_list(_turn("human", "user"), _turn("gpt", "assistant")).alias("conversations"), "system")


def sharegpt_dataset_info(name: str, files: dict[str, str]) -> dict:
    """LLaMA-Factory's dataset_info.json entries, one per split file."""
    return {
        f"{name}_{split}": {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
        for split, file_name in files.items()
    }


def bedrock_forbidden() -> pl.Expr:
    """True for a sample whose text contains a substring Bedrock rejects."""
    text = pl.concat_str("system", "user", "assistant", separator="\n")
    return text.str.contains_any(BEDROCK_FORBIDDEN)


def bedrock(prompts_frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """bedrock-conversation-2024 lines, and how many samples were left out for forbidden substrings."""
    allowed = prompts_frame.filter(~bedrock_forbidden())
    lines = allowed.select(
        pl.lit(BEDROCK_SCHEMA_VERSION).alias("schemaVersion"),
        _text_block("system").alias("system"),
        pl.concat_list(
            pl.struct(pl.lit("user").alias("role"), _text_block("user").alias("content")),
            pl.struct(pl.lit("assistant").alias("role"), _text_block("assistant").alias("content")),
        ).alias("messages"),
    )
    return lines, prompts_frame.height - allowed.height


def grpo(samples: pl.DataFrame, prompts_frame: pl.DataFrame, target_model: str) -> pl.DataFrame:
    """RL (GRPO) rows: the prompt as `system` + `problem`, the reference ratings as `answer`."""
    own_scores = pl.concat_list([pl.col("scores").list.get(i) for i in CRITERIA_OF[target_model]])
    answers = samples.select(_score_list(own_scores).alias("answer")).to_series()
    return prompts_frame.select("system", pl.col("user").alias("problem")).with_columns(answers)


def _blank(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars().str.len_chars().fill_null(0) == 0


def _turn_problems(turns: pl.Expr, texts: pl.Expr, first: str, last: str, system: str | None = None) -> pl.Expr:
    """True for a conversation whose roles do not alternate from `first` to `last`, or with an empty turn.

    With `system`, the conversation must open with a non-empty system turn (it names the criteria).
    """
    system_problem = pl.lit(False)
    if system is not None:
        system_problem = (turns.list.first() != system).fill_null(True) | _blank(texts.list.first())
        turns, texts = turns.list.slice(1), texts.list.slice(1)
    alternating = turns.list.eval((pl.element() != pl.element().shift(1)).fill_null(True)).list.all()
    known_roles = turns.list.eval(pl.element().is_in([first, last])).list.all()
    non_empty = texts.list.eval(pl.element().str.strip_chars().str.len_chars().fill_null(0) > 0).list.all()
    ok = (turns.list.len() >= 2) & (turns.list.first() == first) & (turns.list.last() == last) & alternating & known_roles & non_empty
    return ~ok.fill_null(False) | system_problem


def chat_problems(lines: pl.DataFrame) -> int:
    """Lines of a chat SFT file whose `messages` break the format."""
    messages = pl.col("messages")
    roles = messages.list.eval(pl.element().struct.field("role"))
    texts = messages.list.eval(pl.element().struct.field("content"))
    return lines.select(_turn_problems(roles, texts, "user", "assistant", system="system").sum()).item()


def sharegpt_problems(lines: pl.DataFrame) -> int:
    turns = pl.col("conversations")
    roles = turns.list.eval(pl.element().struct.field("from"))
    texts = turns.list.eval(pl.element().struct.field("value"))
    return lines.select((_turn_problems(roles, texts, "human", "gpt") | _blank(pl.col("system"))).sum()).item()


def bedrock_problems(lines: pl.DataFrame) -> int:
    """Lines that are not bedrock-conversation-2024 or contain a substring Bedrock rejects."""
    messages = pl.col("messages")
    roles = messages.list.eval(pl.element().struct.field("role"))
    texts = messages.list.eval(pl.element().struct.field("content").list.eval(pl.element().struct.field("text")).list.join("\n"))
    system = pl.col("system").list.eval(pl.element().struct.field("text")).list.join("\n")
    everything = pl.concat_str(system, texts.list.join("\n"), separator="\n")
    broken = (
        _turn_problems(roles, texts, "user", "assistant")
        | (pl.col("schemaVersion") != BEDROCK_SCHEMA_VERSION).fill_null(True)
        | _blank(system)
        | everything.str.contains_any(BEDROCK_FORBIDDEN).fill_null(True)
    )
    return lines.select(broken.sum()).item()


def grpo_problems(rows: pl.DataFrame) -> int:
    if rows.columns != ["system", "problem", "answer"]:
        return max(rows.height, 1)
    return rows.select(pl.any_horizontal(pl.all().is_null() | (pl.all().str.strip_chars() == "")).sum()).item()

"""Fine-tuning exports: chat SFT (TRL / Hugging Face), LLaMA-Factory sharegpt, Bedrock (Nova) customization.

Prompts come from the config's templates; every frame is built with polars expressions, one
row per sample, so an export line is traceable to its sample by row order. The RL formats
(GRPO, verl) are in export_rl, the QE-regression CSV in export_qe.
"""

from __future__ import annotations

import string

import polars as pl

from tqc_dagster.core.hashing import stable_hash_expr
from tqc_dagster.core.rubric import COMPLEX, COMPLEX_CRITERION, CRITERIA, SIMPLE, SIMPLE_CRITERIA

BEDROCK_SCHEMA_VERSION = "bedrock-conversation-2024"
# Reserved keywords (sources in bedrock_forbidden's docstring).
BEDROCK_FORBIDDEN = ["User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]", "<unk>"]
# Records per customization job file (sources in shard_sizes' docstring).
BEDROCK_MAX_RECORDS = 20_000
BEDROCK_MIN_RECORDS = 8
NOVA_2_LITE_MIN_RECORDS = 200

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


def own_scores(target_model: str) -> pl.Expr:
    """The target model's criterion scores (list of floats, 0-5) out of the 7 in `scores`."""
    return pl.concat_list([pl.col("scores").list.get(i) for i in CRITERIA_OF[target_model]])


def score_text(target_model: str) -> pl.Expr:
    """The target model's reference ratings as the assistant writes them: `[5.0, 4.5]`."""
    return _score_list(own_scores(target_model))


def language_code(target_lang: pl.Expr) -> pl.Expr:
    """ISO 639 code of a judge prompt's target_lang (`zh-cn` -> `zh`, `ru-ru` -> `ru`): the letters before the first
    `-` or `_`, lower case; `und` (undetermined) when absent or not 2-3 letters."""
    return target_lang.str.to_lowercase().str.extract(r"^([a-z]{2,3})(?:[-_]|$)", 1).fill_null("und")


def prompts(samples: pl.DataFrame, target_model: str, system_template: str, user_template: str, assistant_template: str) -> pl.DataFrame:
    """`system`, `user`, `assistant` text per sample, plus `sample_id`."""
    # target_lang may be absent from a judge prompt; a null field would null the whole text.
    fields = {name: pl.col(name).cast(pl.String).fill_null("unknown" if name == "target_lang" else "") for name in SAMPLE_FIELDS}
    fields |= {"criteria": pl.lit(criteria_text(target_model)), "scores": score_text(target_model), "all_scores": _score_list(pl.col("scores"))}
    return samples.select(
        "sample_id",
        template(system_template, fields, f"export.system_prompts.{target_model}").alias("system"),
        template(user_template, fields, "export.user_template").alias("user"),
        template(assistant_template, fields, "export.assistant_template").alias("assistant"),
    )


def _message(role: str, content: str) -> pl.Expr:
    return pl.struct(pl.lit(role).alias("role"), pl.col(content).alias("content"))


def chat_prompt() -> pl.Expr:
    """The prompt as a chat list `[{role: system, content}, {role: user, content}]` (TRL's conversational prompt)."""
    return pl.concat_list(_message("system", "system"), _message("user", "user"))


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
    """True for a sample whose text contains a reserved keyword of BEDROCK_FORBIDDEN, in any (ASCII) letter case.

    Bedrock fails a Nova customization job whose text holds `User:`, `Bot:`, `Assistant:`, `System:`, `<image>`,
    `<video>` or `[EOS]` anywhere: https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html
    (item 12). AWS's own validator (github.com/aws-samples/amazon-nova-samples, customization/bedrock-finetuning/
    understanding/dataset_validation/nova_ft_dataset_validator.py, validate_invalid_tokens) lower-cases text and
    keywords before matching and adds `<unk>`.
    """
    text = pl.concat_str("system", "user", "assistant", separator="\n")
    return _reserved(text)


def _reserved(text: pl.Expr) -> pl.Expr:
    return text.str.contains_any(BEDROCK_FORBIDDEN, ascii_case_insensitive=True)


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


def shard_sizes(records: int, max_records: int = BEDROCK_MAX_RECORDS) -> list[int]:
    """Lines per file when `records` lines are cut into the fewest files of at most `max_records`:
    n = ceil(records / max_records) files, sizes differing by at most one (file k holds positions
    floor(k*records/n) .. floor((k+1)*records/n) - 1). No file for no record.

    The limits: 8 to 20,000 records per job for Nova micro / lite / pro, and 200 to 20,000 for Nova 2 Lite
    (`lite-2.0`) SFT, from AWS's validator (nova_ft_dataset_validator.py above: MODEL_TO_NUM_SAMPLES_MAP,
    NOVA_2_0_LITE_SAMPLE_BOUNDS); we found no AWS documentation page stating these numbers. Nova 2.0 SFT takes no
    validation set: https://docs.aws.amazon.com/sagemaker/latest/dg/nova-fine-tune-2.html ("Current limitations").
    """
    files = -(-records // max_records)
    return [(k + 1) * records // files - k * records // files for k in range(files)]


def bedrock_shards(prompts_frame: pl.DataFrame, seed: int, max_records: int = BEDROCK_MAX_RECORDS) -> tuple[list[pl.DataFrame], int]:
    """The Bedrock lines of a split cut into job files of at most `max_records` lines (see shard_sizes), and the
    samples left out. The rule, seeded and deterministic: lines are ranked by BLAKE2b of `"<seed>|<sample_id>"`
    (ties by sample_id order) and position p goes to file ((p + 1) * n - 1) // records; inside a file lines keep
    their sample_id order. Each file is a random part of the split, so each is a valid job input on its own."""
    lines, left_out = bedrock(prompts_frame)
    sizes = shard_sizes(lines.height, max_records)
    if len(sizes) <= 1:
        return [lines] * len(sizes), left_out
    ids = prompts_frame.filter(~bedrock_forbidden()).select("sample_id")
    position = stable_hash_expr(pl.concat_str(pl.lit(f"{seed}|"), pl.col("sample_id"))).rank("ordinal").cast(pl.Int64) - 1
    shard = ids.select(((position + 1) * len(sizes) - 1) // lines.height).to_series().alias("shard")
    parts = lines.with_columns(shard).partition_by("shard", as_dict=True, include_key=False, maintain_order=True)
    return [parts[(k,)] for k in range(len(sizes))], left_out


def shard_paths(folder: str, split: str, records: int, max_records: int = BEDROCK_MAX_RECORDS) -> list[str]:
    """The file names of a split's shards: `bedrock/train.jsonl` for one, `bedrock/train-00000-of-00002.jsonl` ... for
    several (the shard pattern Hugging Face `datasets` reads as one split)."""
    files = len(shard_sizes(records, max_records))
    if files == 1:
        return [f"{folder}/{split}.jsonl"]
    return [f"{folder}/{split}-{k:05d}-of-{files:05d}.jsonl" for k in range(files)]


def is_blank(text: pl.Expr) -> pl.Expr:
    """True for a null, empty or whitespace-only text."""
    return text.str.strip_chars().str.len_chars().fill_null(0) == 0


def _turn_problems(turns: pl.Expr, texts: pl.Expr, first: str, last: str, system: str | None = None) -> pl.Expr:
    """True for a conversation whose roles do not alternate from `first` to `last`, or with an empty turn.

    With `system`, the conversation must open with a non-empty system turn (it names the criteria).
    """
    system_problem = pl.lit(False)
    if system is not None:
        system_problem = (turns.list.first() != system).fill_null(True) | is_blank(texts.list.first())
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
    return lines.select((_turn_problems(roles, texts, "human", "gpt") | is_blank(pl.col("system"))).sum()).item()


def bedrock_problems(lines: pl.DataFrame) -> int:
    """Lines that are not bedrock-conversation-2024 or contain a reserved keyword, plus the lines beyond
    BEDROCK_MAX_RECORDS (one job file may hold no more)."""
    messages = pl.col("messages")
    roles = messages.list.eval(pl.element().struct.field("role"))
    texts = messages.list.eval(pl.element().struct.field("content").list.eval(pl.element().struct.field("text")).list.join("\n"))
    system = pl.col("system").list.eval(pl.element().struct.field("text")).list.join("\n")
    everything = pl.concat_str(system, texts.list.join("\n"), separator="\n")
    broken = (
        _turn_problems(roles, texts, "user", "assistant")
        | (pl.col("schemaVersion") != BEDROCK_SCHEMA_VERSION).fill_null(True)
        | is_blank(system)
        | _reserved(everything).fill_null(True)
    )
    return lines.select(broken.sum()).item() + max(lines.height - BEDROCK_MAX_RECORDS, 0)


def prompt_problems(prompt: pl.Expr) -> pl.Expr:
    """True for a chat prompt that is not exactly a non-empty system turn then a non-empty user turn."""
    roles = prompt.list.eval(pl.element().struct.field("role")).list.join("|")
    filled = prompt.list.eval(~is_blank(pl.element().struct.field("content"))).list.all()
    return ~((roles == "system|user") & filled).fill_null(False)


def any_blank(*texts: pl.Expr) -> pl.Expr:
    """True for a row where any of the texts is null or blank."""
    return pl.any_horizontal(is_blank(text) for text in texts)

"""The project config: one YAML file (`--config`, else the file `TQC_CONFIG` names, else `tqc.yaml` in the
current folder), read when the definitions or a command need it, never at import.

Judge versions and the translation-id -> model map are data here, so adding `v3` is a config
entry, not a code change. Relative paths resolve against the config file's own folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from tqc_dagster.config_base import EndpointUrl, JudgeVersionName, LocalPath, Location, ModelName, Region, Seed, Text, _Strict, template_with, value_problem
from tqc_dagster.config_batch import JudgeBatch, JudgePrompt, SynthesisBatch  # noqa: F401  (part of the config's interface)
from tqc_dagster.core.export import TEMPLATE_FIELDS
from tqc_dagster.core.judgments import Thresholds
from tqc_dagster.core.rubric import TARGET_MODELS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV_VAR = "TQC_CONFIG"
# The config used when none is named and TQC_CONFIG is unset: tqc.yaml in the current folder, the folder a
# user runs `tqc` or `dagster dev` from (never the package's own folder, which is site-packages once installed).
DEFAULT_CONFIG_NAME = "tqc.yaml"


def default_config_path() -> Path:
    """The config file used when none is named: the one TQC_CONFIG names, else tqc.yaml in the current folder."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or Path.cwd() / DEFAULT_CONFIG_NAME)


def __getattr__(name: str) -> Path:
    # DEFAULT_CONFIG_PATH: tqc.yaml in the current folder, looked up when asked for (the folder may change after import).
    if name == "DEFAULT_CONFIG_PATH":
        return Path.cwd() / DEFAULT_CONFIG_NAME
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ConfigError(ValueError):
    """A config problem, with the key and the file named so the user knows what to fix."""


class JudgeVersion(_Strict):
    judge_model: Text
    input: Location | None = Field(
        None, description="glob over the judge's batch outputs (.jsonl.out); with judge_from: derived from batch.output_uri, leave it out"
    )
    judge_from: JudgeVersionName | None = Field(None, description="judge the sources and translations this other judge version judged")
    batch: JudgeBatch | None = Field(None, description="Bedrock batch inference settings; required with judge_from")

    @model_validator(mode="wrap")
    @classmethod
    def _one_source(cls, data, handler):
        """`input`, or `judge_from` with `batch`; each problem named at its key, beside any other problem of the entry."""
        given = data if isinstance(data, dict) else {}
        judged = given.get("judge_from") is not None
        problems = []
        if not judged and given.get("input") is None:
            problems.append({"type": "missing", "loc": ("input",), "input": data})
        if judged and given.get("input") is not None:  # named at both keys: either one is the mistake
            problems.append(value_problem("input", data, "leave it out with judge_from (the outputs are read from batch.output_uri)"))
            problems.append(value_problem("judge_from", data, "set together with input: a version reads its input glob or is judged from another, not both"))
        if judged and given.get("batch") is None:
            problems.append(value_problem("batch", data, "missing key (judge_from judges through Bedrock batch inference)"))
        if not judged and given.get("batch") is not None:
            problems.append(value_problem("batch", data, "only with judge_from (batch inference judges a version judge_from names)"))
        try:
            version = handler(data)
        except ValidationError as error:
            if not problems:
                raise
            details = [{key: item[key] for key in ("type", "loc", "input", "ctx") if key in item} for item in error.errors(include_url=False)]
            raise ValidationError.from_exception_data(error.title, [*details, *problems]) from None
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return version


class TranslationModel(_Strict):
    translation_id: int = Field(ge=1, description='the <translation id="N"> of this model in the judge prompt')
    name: Text


class Checks(_Strict):
    max_quarantine_rate: float = Field(0.1, ge=0.0, le=1.0)
    min_test_group_samples: int = Field(
        20, ge=1, description="the dataset card and the run summary warn about a test criterion group with fewer samples "
        "(or a single label): too few to measure that criterion's precision and recall"
    )


class Synthesis(_Strict):
    backend: Literal["rules", "bedrock"] = "rules"
    min_samples: int = Field(100, ge=1, description="groups below this many samples are topped up to it")
    seed: Seed = 0
    samples_per_request: int = Field(5, ge=1, description="bedrock backend: new samples asked for per request")
    max_requests_per_group: int = Field(20, ge=1, description="bedrock backend: request budget of one group")
    on_shortfall: Literal["warn", "fail"] = Field(
        "warn", description="a group left below min_samples: warn (the run goes on) or fail (a blocking check stops what follows)"
    )
    verify_with_judge: bool = Field(
        False, description="bedrock backend: keep a sample only when the judge model, sent the real judge prompt, puts it in its group"
    )
    judge_model: Text | None = Field(None, description="model id of the verifying judge; null: the partition's judge_versions.<v>.judge_model")
    batch: SynthesisBatch | None = Field(
        None, description="bedrock backend: send a partition's first round through Bedrock batch inference when it has at least batch.min_requests requests"
    )

    @field_validator("verify_with_judge")
    @classmethod
    def _bedrock_samples_only(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("backend") == "rules":
            raise ValueError("needs backend: bedrock (the rules backend's samples are not judged)")
        return value

    @field_validator("batch")
    @classmethod
    def _bedrock_requests_only(cls, value: SynthesisBatch | None, info: ValidationInfo) -> SynthesisBatch | None:
        if value is not None and info.data.get("backend") != "bedrock":
            raise ValueError("needs backend: bedrock (the rules backend sends no requests)")
        return value


class S3(_Strict):
    """How to reach S3 for s3:// inputs and storage; credentials come from boto3's default chain."""

    endpoint_url: EndpointUrl | None = Field(None, description="an S3-compatible server; null: AWS_ENDPOINT_URL or AWS")
    region: Region | None = None


class TokenPrice(_Strict):
    input: float = Field(ge=0.0, description="USD per million input tokens")
    output: float = Field(ge=0.0, description="USD per million output tokens")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for that many tokens, unrounded."""
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


# USD per million (input, output) tokens on demand (Amazon Bedrock pricing, https://aws.amazon.com/bedrock/pricing/);
# batch inference is billed at half the on-demand price there.
ON_DEMAND_PRICES = {
    "anthropic.claude-3-5-sonnet-20241022-v2:0": (3.0, 15.0),
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0": (3.0, 15.0),
    "amazon.nova-lite-v1:0": (0.06, 0.24),
}
BATCH_PRICE_SHARE = 0.5


class Bedrock(_Strict):
    """The Bedrock Converse client of the bedrock synthesis backend. Credentials: boto3's default chain only."""

    region: Region = "us-west-2"
    model_id: Text = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    # The limiter spaces requests 60 s / quota apart and waits that long: a tiny quota overflows the wait.
    requests_per_minute: float = Field(150, ge=0.01, le=1e6)
    max_tokens: int = Field(2048, ge=1, description="maxTokens of each request")
    tokens_per_minute: int = Field(400_000, gt=0)
    max_workers: int = Field(10, ge=1)
    # The client backs off base * 2**attempt seconds, a float that overflows past ~1000 attempts.
    max_attempts: int = Field(8, ge=1, le=100)
    # An hour is already a hung connection; far larger values overflow the socket timeout (OverflowError).
    timeout_s: float = Field(120, gt=0, le=3600)
    endpoint_url: EndpointUrl | None = None
    cache_dir: LocalPath | None = Field(None, description="local folder; null: <storage_root>/bedrock_cache (beside the config when storage is on S3)")
    prices: dict[str, TokenPrice] = Field(
        default_factory=lambda: {model: TokenPrice(input=i, output=o) for model, (i, o) in ON_DEMAND_PRICES.items()},
        description="USD per million tokens by model id, for cost estimates",
    )
    batch_prices: dict[str, TokenPrice] = Field(
        default_factory=lambda: {model: TokenPrice(input=i * BATCH_PRICE_SHARE, output=o * BATCH_PRICE_SHARE) for model, (i, o) in ON_DEMAND_PRICES.items()},
        description="USD per million tokens of batch inference by model id, for the judging estimate and bulk synthesis",
    )

    @field_validator("tokens_per_minute")
    @classmethod
    def _one_request_fits(cls, value: int, info: ValidationInfo) -> int:
        """The limiter reserves each request's input estimate plus max_tokens and refuses one larger than the quota."""
        max_tokens = info.data.get("max_tokens")
        if max_tokens is not None and value <= max_tokens:
            raise ValueError(f"must be above bedrock.max_tokens ({max_tokens}): one request reserves its input tokens plus max_tokens")
        return value

    @property
    def price(self) -> TokenPrice | None:
        return self.prices.get(self.model_id)


class Split(_Strict):
    test_ratio: float = Field(0.1, gt=0.0, lt=1.0)
    seed: Seed = 0


class Balance(_Strict):
    max_per_category: int | None = Field(None, ge=1, description="cap on negatives per balance group")
    # Synthetic rows are perturbations of a few flawless titles in templated wording: a model trained mostly on them
    # learns the generator's patterns, not the judge's. At 0.3 at least 7 in 10 training samples of every criterion
    # are real judge verdicts, while a rare group still gets examples to learn from; judged rows are kept first and
    # synthetic ones are dropped round-robin over the rare groups, so each keeps some.
    max_synthetic_share: float | None = Field(
        0.3, gt=0.0, le=1.0, description="cap on the synthetic share of each balance group in balanced_trainset; null = no cap"
    )
    seed: Seed = 0


DEFAULT_SYSTEM_PROMPT = (
    "You are a translation quality checker. Judge the translation of an Amazon product title into "
    "{target_lang} against these criteria, each scored from 0 to 5:\n{criteria}\n"
    "Think step by step inside <think></think>, then give your ratings as a list of numbers in that order."
)


def _template(text: str) -> str:
    """Checked as core.export.template reads it, so a bad template stops the load, not the exports step."""
    if not text.strip():
        raise ValueError("must not be empty: every exported turn needs text")
    return template_with(TEMPLATE_FIELDS)(text)


Template = Annotated[str, AfterValidator(_template)]


class Export(_Strict):
    """Prompt templates of the fine-tuning exports; fields in braces are filled per sample."""

    system_prompts: dict[Literal["simple", "complex"], Template] = Field(
        default_factory=lambda: {"simple": DEFAULT_SYSTEM_PROMPT, "complex": DEFAULT_SYSTEM_PROMPT},
        description="per target model; fields: {target_lang}, {criteria}",
    )
    user_template: Template = Field(
        "## Source Text\n{source}\n\n## Translation ({target_lang})\n{translation}",
        description="fields: {source}, {translation}, {target_lang}, {product_category}",
    )
    assistant_template: Template = Field(
        "<think>{thought}</think>, my ratings is {scores}",
        description="fields: {thought}, {scores} (the target model's criteria), {all_scores}",
    )
    license: Text = Field("other", description="the dataset card's license tag, a Hugging Face license id such as cc-by-nc-4.0")
    seed: Seed = Field(0, description="orders the Bedrock lines of a split of more than 20,000 before it is cut into job files")

    @field_validator("system_prompts")
    @classmethod
    def _every_target_model(cls, prompts: dict[str, str]) -> dict[str, str]:
        """The exports ask for the system prompt of each target model; one left out keeps the default."""
        return {target: prompts.get(target, DEFAULT_SYSTEM_PROMPT) for target in TARGET_MODELS}


class Agreement(_Strict):
    judges: tuple[str, ...] = Field(("v1", "v2"), min_length=2, description="the judge versions compared by judge_agreement, pair by pair")
    min_kappa: float = Field(0.4, ge=-1.0, le=1.0, description="judge_agreement warns for a criterion below this weighted kappa")

    @field_validator("judges")
    @classmethod
    def _distinct(cls, judges: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(judges)) != len(judges):
            raise ValueError(f"each judge version once: {list(judges)}")
        return judges


class Consensus(_Strict):
    policy: Literal["none", "label", "bucket"] = Field(
        "none",
        description="label: keep a judged training sample only when every other judge version gives it the same label "
        "for its target model; bucket: only when their score buckets on its criterion differ by at most one",
    )


class TqcConfig(_Strict):
    storage_root: Location = Field(description="a local folder or s3://bucket/prefix")
    judge_versions: dict[JudgeVersionName, JudgeVersion]
    models: dict[ModelName, TranslationModel]
    labels: Thresholds = Thresholds()
    checks: Checks = Checks()
    s3: S3 = S3()
    synthesis: Synthesis = Synthesis()
    bedrock: Bedrock = Bedrock()
    split: Split = Split()
    balance: Balance = Balance()
    agreement: Agreement = Agreement()
    consensus: Consensus = Consensus()
    export: Export = Export()
    config_path: str = Field("", exclude=True, description="the file this config was read from")

    @field_validator("judge_versions", "models")
    @classmethod
    def _not_empty(cls, value: dict) -> dict:
        if not value:
            raise ValueError("needs at least one entry")
        return value

    @model_validator(mode="after")
    def _judge_from_exists(self) -> "TqcConfig":
        for name, version in self.judge_versions.items():
            source = version.judge_from
            if source is not None and (source == name or source not in self.judge_versions):
                raise ValueError(f"judge_versions.{name}.judge_from: {source!r} must be another key of judge_versions {list(self.judge_versions)}")
        return self

    @model_validator(mode="after")
    def _agreement_judges_exist(self) -> "TqcConfig":
        if len(self.judge_versions) >= 2 and not set(self.agreement.judges) <= set(self.judge_versions):
            raise ValueError(f"agreement.judges {list(self.agreement.judges)} must be keys of judge_versions {list(self.judge_versions)}")
        return self

    @field_validator("models")
    @classmethod
    def _distinct_ids(cls, value: dict[str, TranslationModel]) -> dict[str, TranslationModel]:
        owner: dict[int, str] = {}
        for name, model in value.items():
            if model.translation_id in owner:
                raise ValueError(
                    f"translation_id values must be distinct: models.{owner[model.translation_id]}.translation_id "
                    f"and models.{name}.translation_id are both {model.translation_id}"
                )
            owner[model.translation_id] = name
        return value

    def verifying_judge(self, judge_version: str) -> str | None:
        """The model id that verifies the synthetic samples of a judge version's partitions, None when verification is off."""
        if not self.synthesis.verify_with_judge:
            return None
        return self.synthesis.judge_model or self.judge_versions[judge_version].judge_model

    @property
    def judge_version_names(self) -> list[str]:
        return list(self.judge_versions)

    @property
    def model_names(self) -> list[str]:
        return list(self.models)


def _resolve(path: str, base: Path) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    return str(base / path)


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid config"]
    for item in error.errors():
        loc = item["loc"][:-1] if item["loc"][-1:] == ("[key]",) else item["loc"]  # a bad mapping key: named by itself
        key = ".".join(str(part) for part in loc)
        message = {"missing": "missing key", "extra_forbidden": "unknown key"}.get(item["type"], item["msg"])
        message = message.removeprefix("Value error, ")
        lines.append(f"  {key}: {message}" if key else f"  {message}")  # no key: a rule across sections
    return "\n".join(lines)


def probe_writable(folder: Path) -> None:
    """Raise OSError unless a file can be made in `folder`, or in its nearest existing ancestor if it is not there yet.

    A real probe (a temporary file, made and removed): `os.access` says yes to root even on a read-only mount.
    """
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is not a folder")
    with tempfile.NamedTemporaryFile(dir=existing, prefix=".tqc-probe-"):
        pass


def _how_chosen(path: str | os.PathLike | None) -> str:
    """For a missing file: why this file was looked for, when the user did not name it."""
    if path:
        return ""
    if os.environ.get(CONFIG_ENV_VAR):
        return f" (named by {CONFIG_ENV_VAR})"
    return f" (no config named and {CONFIG_ENV_VAR} unset, so {DEFAULT_CONFIG_NAME} in the current folder; name one with --config or {CONFIG_ENV_VAR})"


def batch_output_glob(output_uri: str) -> str:
    """The batch outputs of a judged version: Bedrock writes `<output_uri>/<job id>/<input file>.out` (AWS user guide,
    "View the results of a batch inference job")."""
    return output_uri.rstrip("/") + "/*/*.jsonl.out" if "://" in output_uri else str(Path(output_uri, "*", "*.jsonl.out"))


def _resolved_batch(batch, base: Path):
    """A batch config (config_batch.BatchJobs) with its input_uri and output_uri against the config's folder."""
    return batch.model_copy(update={"input_uri": _resolve(batch.input_uri, base), "output_uri": _resolve(batch.output_uri, base)})


def _resolved_version(version: JudgeVersion, base: Path) -> JudgeVersion:
    """Paths against the config's folder; a judged version reads its batch outputs from batch.output_uri."""
    if version.batch is None:
        return version.model_copy(update={"input": _resolve(version.input, base)})
    batch = _resolved_batch(version.batch, base)
    return version.model_copy(update={"batch": batch, "input": batch_output_glob(batch.output_uri)})


def load_config(path: str | os.PathLike | None = None) -> TqcConfig:
    """Read and validate a config file (None: `default_config_path()`); any problem raises ConfigError naming the key and the file."""
    config_path = Path(path or default_config_path()).resolve()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found{_how_chosen(path)}") from None
    except OSError as error:
        raise ConfigError(f"{config_path}: cannot read the config file: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{config_path}: not UTF-8 text: {error}") from None
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as error:  # ValueError: an integer of over 4300 digits
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a mapping of config keys at the top level, got {'an empty file' if raw is None else type(raw).__name__}")
    try:
        config = TqcConfig.model_validate({**raw, "config_path": str(config_path)})
    except ValidationError as error:
        raise ConfigError(_describe(error, config_path)) from None
    base = config_path.parent
    storage_root = _resolve(config.storage_root, base)
    # The response cache is local: on S3 storage it defaults to a folder beside the config.
    default_cache = str(base / "bedrock_cache") if "://" in storage_root else str(Path(storage_root) / "bedrock_cache")
    cache_dir = _resolve(config.bedrock.cache_dir, base) if config.bedrock.cache_dir else default_cache
    # Local folders written by a run are probed now; S3 is checked when a run first writes (no network at load).
    written = {"storage_root": storage_root} if "://" not in storage_root else {}
    if config.synthesis.backend == "bedrock":
        written["bedrock.cache_dir"] = cache_dir
    for key, folder in written.items():
        try:
            probe_writable(Path(folder))
        except OSError as error:
            raise ConfigError(f"{config_path}: invalid config\n  {key}: cannot write to {folder}: {error}") from None
    return config.model_copy(
        update={
            "storage_root": storage_root,
            "bedrock": config.bedrock.model_copy(update={"cache_dir": cache_dir}),
            "judge_versions": {name: _resolved_version(jv, base) for name, jv in config.judge_versions.items()},
            "synthesis": config.synthesis.model_copy(update={"batch": config.synthesis.batch and _resolved_batch(config.synthesis.batch, base)}),
        }
    )


def project_config() -> TqcConfig:
    """The config the code location's definitions are built from: `load_config()` with no path, read on each call
    (the definitions are built lazily, once per code-location load, so a reload sees an edited file)."""
    return load_config()


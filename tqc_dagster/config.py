"""The project config: one YAML file (`tqc.yaml`, or the file `TQC_CONFIG` names), read once.

Judge versions and the translation-id -> model map are data here, so adding `v3` is a config
entry, not a code change. Relative paths resolve against the config file's own folder.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "tqc.yaml"
CONFIG_ENV_VAR = "TQC_CONFIG"


class ConfigError(ValueError):
    """A config problem, with the key and the file named so the user knows what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgeVersion(_Strict):
    judge_model: str
    input: str = Field(description="glob over the judge's batch outputs (.jsonl.out)")


class TranslationModel(_Strict):
    translation_id: int = Field(ge=1, description='the <translation id="N"> of this model in the judge prompt')
    name: str


class LabelThresholds(_Strict):
    simple: float = 3.0
    complex: float = 4.0


class Checks(_Strict):
    max_quarantine_rate: float = Field(0.1, ge=0.0, le=1.0)


class Synthesis(_Strict):
    backend: Literal["rules", "bedrock"] = "rules"
    min_samples: int = Field(100, ge=1, description="groups below this many samples are topped up to it")
    seed: int = 0
    samples_per_request: int = Field(5, ge=1, description="bedrock backend: new samples asked for per request")
    max_requests_per_group: int = Field(20, ge=1, description="bedrock backend: request budget of one group")


class S3(_Strict):
    """How to reach S3 for s3:// inputs and storage; credentials come from boto3's default chain."""

    endpoint_url: str | None = Field(None, description="an S3-compatible server; null: AWS_ENDPOINT_URL or AWS")
    region: str | None = None


class TokenPrice(_Strict):
    input: float = Field(ge=0.0, description="USD per million input tokens")
    output: float = Field(ge=0.0, description="USD per million output tokens")


class Bedrock(_Strict):
    """The Bedrock Converse client of the bedrock synthesis backend. Credentials: boto3's default chain only."""

    region: str = "us-west-2"
    model_id: str = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    requests_per_minute: float = Field(150, gt=0)
    tokens_per_minute: int = Field(400_000, gt=0)
    max_workers: int = Field(10, ge=1)
    max_attempts: int = Field(8, ge=1)
    timeout_s: float = Field(120, gt=0)
    endpoint_url: str | None = None
    cache_dir: str | None = Field(None, description="local folder; null: <storage_root>/bedrock_cache (beside the config when storage is on S3)")
    max_tokens: int = Field(2048, ge=1, description="maxTokens of each request")
    prices: dict[str, TokenPrice] = Field(
        default_factory=lambda: {
            "anthropic.claude-3-5-sonnet-20241022-v2:0": TokenPrice(input=3.0, output=15.0),
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0": TokenPrice(input=3.0, output=15.0),
            "amazon.nova-lite-v1:0": TokenPrice(input=0.06, output=0.24),
        },
        description="USD per million tokens by model id, for cost estimates",
    )

    @property
    def price(self) -> TokenPrice | None:
        return self.prices.get(self.model_id)


class Split(_Strict):
    test_ratio: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0


class Balance(_Strict):
    max_per_category: int | None = Field(None, ge=1, description="cap on negatives per balance group")
    seed: int = 0


DEFAULT_SYSTEM_PROMPT = (
    "You are a translation quality checker. Judge the translation of an Amazon product title into "
    "{target_lang} against these criteria, each scored from 0 to 5:\n{criteria}\n"
    "Think step by step inside <think></think>, then give your ratings as a list of numbers in that order."
)


class Export(_Strict):
    """Prompt templates of the fine-tuning exports; fields in braces are filled per sample."""

    system_prompts: dict[Literal["simple", "complex"], str] = Field(
        default_factory=lambda: {"simple": DEFAULT_SYSTEM_PROMPT, "complex": DEFAULT_SYSTEM_PROMPT},
        description="per target model; fields: {target_lang}, {criteria}",
    )
    user_template: str = Field(
        "## Source Text\n{source}\n\n## Translation ({target_lang})\n{translation}",
        description="fields: {source}, {translation}, {target_lang}, {product_category}",
    )
    assistant_template: str = Field(
        "<think>{thought}</think>, my ratings is {scores}",
        description="fields: {thought}, {scores} (the target model's criteria), {all_scores}",
    )


class Agreement(_Strict):
    judges: tuple[str, str] = Field(("v1", "v2"), description="the two judge versions compared by judge_agreement")
    min_kappa: float = Field(0.4, ge=-1.0, le=1.0, description="judge_agreement warns for a criterion below this weighted kappa")


class Consensus(_Strict):
    policy: Literal["none", "label", "bucket"] = Field(
        "none",
        description="label: keep a judged training sample only when every other judge version gives it the same label "
        "for its target model; bucket: only when their score buckets on its criterion differ by at most one",
    )


class TqcConfig(_Strict):
    storage_root: str = Field(description="a local folder or s3://bucket/prefix")
    judge_versions: dict[str, JudgeVersion]
    models: dict[str, TranslationModel]
    labels: LabelThresholds = LabelThresholds()
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
    def _agreement_judges_exist(self) -> "TqcConfig":
        if len(self.judge_versions) >= 2 and not set(self.agreement.judges) <= set(self.judge_versions):
            raise ValueError(f"agreement.judges {list(self.agreement.judges)} must be keys of judge_versions {list(self.judge_versions)}")
        return self

    @field_validator("models")
    @classmethod
    def _distinct_ids(cls, value: dict[str, TranslationModel]) -> dict[str, TranslationModel]:
        ids = [m.translation_id for m in value.values()]
        if len(ids) != len(set(ids)):
            raise ValueError(f"translation_id values must be distinct, got {ids}")
        return value

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
        key = ".".join(str(part) for part in item["loc"])
        message = {"missing": "missing key", "extra_forbidden": "unknown key"}.get(item["type"], item["msg"])
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike | None = None) -> TqcConfig:
    """Read and validate a config file; any problem raises ConfigError naming the key and the file."""
    config_path = Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH).resolve()
    try:
        raw = yaml.safe_load(config_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a mapping of config keys at the top level")
    try:
        config = TqcConfig.model_validate({**raw, "config_path": str(config_path)})
    except ValidationError as error:
        raise ConfigError(_describe(error, config_path)) from None
    base = config_path.parent
    storage_root = _resolve(config.storage_root, base)
    cache_dir = config.bedrock.cache_dir
    # The response cache is local: on S3 storage it defaults to a folder beside the config.
    default_cache = str(base / "bedrock_cache") if "://" in storage_root else str(Path(storage_root) / "bedrock_cache")
    return config.model_copy(
        update={
            "storage_root": storage_root,
            "bedrock": config.bedrock.model_copy(
                update={"cache_dir": _resolve(cache_dir, base) if cache_dir else default_cache}
            ),
            "judge_versions": {
                name: jv.model_copy(update={"input": _resolve(jv.input, base)})
                for name, jv in config.judge_versions.items()
            },
        }
    )


@lru_cache(maxsize=1)
def project_config() -> TqcConfig:
    """The config the Dagster definitions are built from (read once per process)."""
    return load_config()


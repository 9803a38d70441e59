"""The building blocks of the project config (config.py): the strict base model and the checked field types.

Shared by config.py and config_batch.py, so each config section is defined once.
"""

from __future__ import annotations

import re
import string
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _text(value: str) -> str:
    """An id, a name or a path: blank is never meaningful."""
    if not value.strip():
        raise ValueError("must not be empty")
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _location(value: str) -> str:
    """A local path or s3://bucket/key: stores.store_for reads any other URL as a local path."""
    if "://" in value and not re.match(r"s3://[^/]+", value):
        raise ValueError(f"{value!r}: only local paths and s3://bucket/... are supported")
    return value


def _local_path(value: str) -> str:
    """The Bedrock response cache is a local folder (bedrock.cache.ResponseCache)."""
    if "://" in value:
        raise ValueError(f"{value!r}: must be a local folder")
    return value


def _name_rule(pattern: str, used_as: str):
    """A config key that becomes part of Dagster names and file names."""
    compiled = re.compile(pattern)

    def check(key: str) -> str:
        if not compiled.fullmatch(key):
            raise ValueError(f"bad name {key!r}: must match {pattern} (it is used as {used_as})")
        return key

    return check


Text = Annotated[str, AfterValidator(_text)]
Location = Annotated[Text, AfterValidator(_location)]
LocalPath = Annotated[Text, AfterValidator(_local_path)]
# Partition keys join judge version and model with `|`; sensors are named batch_outputs_<judge version>
# and Dagster names allow only [A-Za-z0-9_]; both names are also file names under storage_root.
JudgeVersionName = Annotated[str, AfterValidator(_name_rule(r"[A-Za-z0-9][A-Za-z0-9_]{0,63}", "a partition key, a file name and a sensor name"))]
ModelName = Annotated[str, AfterValidator(_name_rule(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a partition key and a file name"))]
# Seeds are hashed as text: a 64-bit range keeps them far from Python's int-to-text digit limit.
Seed = Annotated[int, Field(ge=-(2**63), lt=2**63)]
# botocore's own checks, which otherwise fail only when the first client is made.
Region = Annotated[str, Field(pattern=r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")]
EndpointUrl = Annotated[str, Field(pattern=r"^https?://[^/\s]+")]


def template_with(allowed):
    """A check of a str.format template whose fields must all be in `allowed`: a stray brace or an unknown field
    stops the config load, not the step that fills the template."""

    def check(text: str) -> str:
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
        except ValueError as error:
            raise ValueError(f"broken template: {error} (write a literal brace as {{{{ or }}}})") from None
        for field in fields:
            if field not in allowed:
                raise ValueError(f"unknown field {{{field}}}; known: {sorted(allowed)}")
        return text

    return check


def value_problem(key: str, data, message: str) -> dict:
    """One line of a ValidationError: `message` at `key` of the section `data`."""
    return {"type": "value_error", "loc": (key,), "input": data, "ctx": {"error": ValueError(message)}}


def across(section: str, data, keys: tuple[str, ...], message: str) -> ValidationError:
    """A rule across fields broken: `message` named at each of `keys` (either may be the mistake), so the error names
    the full key (e.g. judge_versions.v3.batch.records_per_file), not only the section. Raise it from a wrap validator."""
    return ValidationError.from_exception_data(section, [value_problem(key, data, message) for key in keys])

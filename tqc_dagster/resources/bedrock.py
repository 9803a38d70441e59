"""BedrockResource: the Converse clients of the bedrock synthesis backend, made from the `bedrock` key of tqc.yaml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tqc_dagster.config import Bedrock

if TYPE_CHECKING:
    from tqc_dagster.bedrock.client import ConverseClient


@dataclass(frozen=True)
class BedrockResource:
    """Quota-aware Bedrock Converse access. Credentials come from boto3's default chain only.

    It holds the config model itself (tqc.yaml is the one place the settings are defined), so Dagster gets it
    as a plain resource object: assets take it as `dg.ResourceParam[BedrockResource]`.
    """

    settings: Bedrock

    def client(self, log: Callable[[str], None] | None = None, model_id: str | None = None) -> ConverseClient:
        """A Converse client of `model_id` (default: the configured one, the synthesis model), with the configured quota,
        retries and cache (boto3 is imported, and a client made, only here: the rules backend never touches AWS)."""
        from tqc_dagster.bedrock.client import ConverseClient

        return ConverseClient.from_settings(self.settings, model_id=model_id, log=log)

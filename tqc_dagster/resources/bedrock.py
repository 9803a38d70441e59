"""BedrockResource: the Converse client of the bedrock synthesis backend, configured from tqc.yaml."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

from tqc_dagster.config import Bedrock

if TYPE_CHECKING:
    from tqc_dagster.bedrock.client import ConverseClient


class BedrockResource(dg.ConfigurableResource):
    """Quota-aware Bedrock Converse access. Credentials come from boto3's default chain only."""

    region: str
    model_id: str
    requests_per_minute: float
    tokens_per_minute: int
    max_workers: int
    max_attempts: int
    timeout_s: float
    endpoint_url: str | None = None
    cache_dir: str
    max_tokens: int

    @classmethod
    def from_config(cls, settings: Bedrock) -> "BedrockResource":
        return cls(**settings.model_dump(exclude={"prices"}))

    def client(self, log: Callable[[str], None] | None = None, model_id: str | None = None) -> ConverseClient:
        """A Converse client of `model_id` (default: the configured one, the synthesis model), with the configured quota,
        retries and cache (boto3 is imported, and a client made, only here: the rules backend never touches AWS)."""
        from tqc_dagster.bedrock.client import ConverseClient

        return ConverseClient(
            region=self.region,
            model_id=model_id or self.model_id,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            max_workers=self.max_workers,
            max_attempts=self.max_attempts,
            timeout_s=self.timeout_s,
            endpoint_url=self.endpoint_url,
            cache_dir=self.cache_dir,
            log=log,
        )

"""A content-addressed cache of Converse responses: a rerun never pays twice for the same request."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

# Everything that shapes a Converse answer; anything else (e.g. retries) must not change the key.
KEY_FIELDS = ("modelId", "messages", "system", "inferenceConfig", "additionalModelRequestFields")


def request_key(request: dict) -> str:
    shaping = {field: request.get(field) for field in KEY_FIELDS}
    canonical = json.dumps(shaping, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except FileNotFoundError:
            return None

    def put(self, key: str, response: dict) -> None:
        """Atomic: a crash leaves the entry absent or whole, never truncated."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp-{uuid.uuid4().hex}")
        temporary.write_text(json.dumps(response, ensure_ascii=False, sort_keys=True))
        os.replace(temporary, path)

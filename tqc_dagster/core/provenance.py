"""What made an export, for its dataset card: the config without machine paths, the code version, the inputs.

Nothing here depends on the clock, so the same input, config and code give the same card byte for byte;
the creation time goes to the Dagster materialization metadata only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from importlib import metadata
from pathlib import Path

from tqc_dagster.config import TqcConfig
from tqc_dagster.stores import WILDCARDS, FileState, is_s3

PACKAGE = "tqc_dagster"
REDACTED = "<local path outside the storage root>"


def card_path(path: str, storage_root: str) -> str:
    """A config path as the card shows it: s3:// URIs as they are; a local path relative to a local storage root
    (`.` for the root itself, `../raw/*.jsonl.out` beside it, POSIX separators); REDACTED when it lies outside the
    storage root's parent folder, or under an S3 storage root."""
    if "://" in path:
        return path
    if is_s3(storage_root):
        return REDACTED
    relative = Path(os.path.relpath(path, storage_root))
    # Beside the storage root (`../raw`) says where inputs sit; further up (`../../home/<user>/...`) is a machine path.
    return REDACTED if relative.parts[:2] == ("..", "..") else relative.as_posix()


def card_config(config: TqcConfig) -> dict:
    """The config as plain data for the card: no config_path, and every path through card_path
    (storage_root, judge_versions.*.input, bedrock.cache_dir)."""
    dumped = config.model_dump(mode="json", exclude={"config_path"})
    root = config.storage_root
    dumped["storage_root"] = card_path(root, root)
    for judge_version in dumped["judge_versions"].values():
        judge_version["input"] = card_path(judge_version["input"], root)
    if dumped["bedrock"]["cache_dir"]:
        dumped["bedrock"]["cache_dir"] = card_path(dumped["bedrock"]["cache_dir"], root)
    return dumped


@functools.cache
def code_version() -> dict[str, str]:
    """`package`: the installed tqc_dagster version; `commit`: `git rev-parse HEAD` of the folder holding the
    package's code, or "unknown" outside a git checkout (a release install). Uncommitted changes are not shown:
    the card stays byte-identical across reruns on one commit."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"package": version, "commit": commit or "unknown"}


def input_fingerprint(states: dict[str, FileState], pattern: str, storage_root: str) -> dict:
    """The batch-output files an export was made from, as the store reports them (size in bytes; version: the S3
    ETag, or the local modification time in ns): `pattern` (through card_path), `files` [{path, size, version}]
    sorted by path, each path relative to the pattern's folder before its first wildcard (`c35-v2/*/*/*.jsonl.out`
    lists `job/run/part.jsonl.out`: where the inputs are mounted is not part of them), and `sha256`, the hash of
    every `path size version` line (first 16 hex digits)."""
    wildcard = WILDCARDS.search(pattern)
    base = pattern[: pattern.rfind("/", 0, wildcard.start()) + 1] if wildcard else pattern[: pattern.rfind("/") + 1]
    files = [{"path": uri.removeprefix(base), "size": state.size, "version": state.version} for uri, state in sorted(states.items())]
    lines = "".join(f"{f['path']} {f['size']} {f['version']}\n" for f in files)
    return {"pattern": card_path(pattern, storage_root), "files": files, "sha256": hashlib.sha256(lines.encode()).hexdigest()[:16]}

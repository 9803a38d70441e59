"""Thin Dagster wrappers around the pure functions of core/, one module per pipeline stage."""

# Who answers for each stage's assets (shown on every asset page and in the catalog).
OWNERS = {
    "ingest": ["team:data-platform"],
    "synthesis": ["team:ml-data"],
    "splits": ["team:ml-data"],
    "agreement": ["team:ml-evaluation"],
    "exports": ["team:ml-training"],
}


def storage_kinds(storage_root: str, *compute: str) -> set[str]:
    """Dagster `kinds` (icons in the UI): the compute (polars unless named) and where the asset is stored."""
    return {*(compute or ("polars",)), "s3" if storage_root.startswith("s3://") else "parquet"}

"""Thin Dagster wrappers around the pure functions of core/, one module per pipeline stage."""

# Who answers for each stage's assets (shown on every asset page and in the catalog).
OWNERS = {
    "ingest": ["team:data-platform"],
    "synthesis": ["team:ml-data"],
    "splits": ["team:ml-data"],
    "agreement": ["team:ml-evaluation"],
    "exports": ["team:ml-training"],
}

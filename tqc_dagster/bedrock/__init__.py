"""Calling Amazon Bedrock's Converse API fast, up to and never past the account's quota.

limiter: requests/min and tokens/min, smooth; cache: content-addressed responses;
client: retries with backoff, accounting, a bounded worker pool.
"""

"""Thin adapters over aiobotocore: Bedrock's batch control plane and S3, mapped to domain values."""

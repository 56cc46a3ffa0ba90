"""Thin adapters over aioboto3: Bedrock's batch control plane and S3, mapped to domain values."""

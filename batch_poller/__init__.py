"""batch-poller: tracks Amazon Bedrock batch inference jobs, stores their results, cleans S3 up."""

__version__ = "0.1.0"

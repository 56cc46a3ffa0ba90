"""A local emulator of Bedrock's batch inference control plane, writing its results to S3.

It speaks the four batch operations over REST-JSON as botocore's `bedrock` model describes
them, runs every job through Bedrock's ten statuses, and writes output files and manifests in
the shapes Bedrock writes. Tests, the demo and the benchmark run against it.
"""

"""Submitting batch jobs: input checked and split, uploaded, created once, tracked."""

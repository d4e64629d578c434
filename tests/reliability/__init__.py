"""Reliability tests: the pipeline as real processes under faults, and input that must not break the gateway."""

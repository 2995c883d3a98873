"""Benchmarks: runnable with ``python -m bench.<name>``; they measure and report, they do not assert."""

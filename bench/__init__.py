"""Rerunnable benchmarks: run each from the repository root as `.venv/bin/python -m bench.<name>`
(see docs/benchmarks.md)."""

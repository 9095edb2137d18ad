"""Benchmark evaluation: per-sample scoring and per-benchmark aggregation (pure functions); the Ray driver is
`pipelines/eval.py`."""

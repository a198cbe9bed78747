"""Benchmarks: run with `make bench`; results land in docs/benchmarks.md (raw numbers in bench/results/)."""

"""Shared pieces of the benchmarks in bench/: a stack to run against, HTTP baselines, reports.

Not a benchmark itself (a package, so `make bench`'s `bench/*.py` loop does not run it). Each
script puts `bench/` on `sys.path` by being run as `python bench/<name>.py`.
"""

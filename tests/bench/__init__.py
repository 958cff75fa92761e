"""Benchmarks (`make bench`), never part of `make test`. Each module has a `main()` that prints its numbers
beside the baseline its issue names, as ratios."""

"""Benchmarks of pywats-client-service against real processes on this machine.

``python -m bench`` runs every scenario (``bench/scenarios/``) and prints one
table; ``python -m bench --help`` lists the options. ``bench.torture`` is the
crash-torture reliability suite, not a benchmark. Importing this package does
nothing else: ``python -m bench.torture`` must not pay for the benchmarks.
"""

"""Benchmark and soak tooling for chatapp (run from the repository root).

``python -m bench.run`` measures the figures of issue 10 beside their
references; ``python -m bench.soak`` runs the soak and chaos test of issue 11.
README.md in this folder says how to reproduce each figure.
"""

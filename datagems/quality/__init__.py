"""Variation you can steer and quality you can see (issue 17): per-record variables and
seed data (``variables``, ``seeds``, ``conditioning``), near-duplicates and the quality
report."""

"""DataGems: synthetic datasets, one validated LLM call per record, on a Ratio1 fleet."""

__version__ = "0.1.0"

"""Baselines placed on the same frontier (BM25)."""

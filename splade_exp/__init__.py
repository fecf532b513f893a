"""splade-exp: configurable sweeps for learned sparse retrieval (SPLADE-style) research."""

__version__ = "0.1.0"

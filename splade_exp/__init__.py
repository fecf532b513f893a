"""splade-exp: configurable sweeps for learned sparse retrieval (SPLADE-style) research."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use: ``import splade_exp`` stays free of torch.
    if name == "load_encoder":
        from splade_exp.export import load_encoder

        return load_encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

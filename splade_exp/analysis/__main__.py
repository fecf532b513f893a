"""``python -m splade_exp.analysis RESULTS_DIR [--out OUT_DIR]``: write the results report;
``python -m splade_exp.analysis A B``: compare two results directories."""
from .report import main

if __name__ == "__main__":
    raise SystemExit(main())

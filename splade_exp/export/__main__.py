"""``python -m splade_exp.export RUN_ID_OR_DIR --out DIR [--push-to-hub REPO]`` (see :mod:`.publish`)."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    from splade_exp.export.model_dir import ModelDirError
    from splade_exp.export.publish import ExportError, export_run

    parser = argparse.ArgumentParser(
        prog="python -m splade_exp.export",
        description="Copy a finished run's model directory to DIR with a model card; optionally upload it.")
    parser.add_argument("source", metavar="RUN_ID_OR_DIR", help="a run id, a run directory or a model directory")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the export (must not exist)")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None,
                        help="also upload it to this Hugging Face model repository (user/name)")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.add_argument("--root", default=None, help="runs root (default: SPLADE_EXP_ROOT, else ./runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = export_run(args.source, args.out, root=args.root, push_to_hub=args.push_to_hub, private=args.private)
    except (ExportError, ModelDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported to {out}" + (f" and uploaded to https://huggingface.co/{args.push_to_hub}"
                                  if args.push_to_hub else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

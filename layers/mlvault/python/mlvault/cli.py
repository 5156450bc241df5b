"""The `mlvault` command line. Verbs are thin: parse, call the library, print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlvault import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlvault",
        description="mlvault: safety-first MLOps on AWS (zero-trust ingest, provenance-rich models).",
    )
    parser.add_argument("--version", action="version", version=f"mlvault {__version__}")
    parser.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

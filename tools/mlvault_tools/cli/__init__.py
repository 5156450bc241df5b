"""The `mlvault` command line: one module per command group, each registering its verbs with `register`; verbs
are thin (parse, call the library, print) and share only `base`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlvault import __version__
from mlvault_tools.cli import (
    base,
    bench_verbs,
    contract_verbs,
    demo_verbs,
    key_verbs,
    local_verbs,
    model_verbs,
    producer_verbs,
    upload_verbs,
)

# In the order `mlvault --help` lists them.
GROUPS = (local_verbs, model_verbs, producer_verbs, upload_verbs, key_verbs, contract_verbs, bench_verbs, demo_verbs)


def build_parser() -> argparse.ArgumentParser:
    parser = base.Parser(
        prog="mlvault",
        description="mlvault: safety-first MLOps on AWS (zero-trust ingest, provenance-rich models).",
        epilog="exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in base.EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"mlvault {__version__}")
    parser.set_defaults(func=None)
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in GROUPS:
        group.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("mlvault: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        code = base.report(err, args)
        if code is None:
            raise
        return code

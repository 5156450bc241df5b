"""`mlvault bench ingest | contracts | unique | screen`: benchmarks (commands, not tests)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _ingest(args: argparse.Namespace) -> int:
    from mlvault_tools.bench import main

    return main(args.cdk_out, args.size_mib)


def _contracts(args: argparse.Namespace) -> int:
    from mlvault_tools.bench import contracts_main

    return contracts_main(args.rows, args.contracts, args.peers_python)


def _unique(args: argparse.Namespace) -> int:
    from mlvault_tools.bench import unique_main

    return unique_main(args.rows)


def _screen(args: argparse.Namespace) -> int:
    from mlvault_tools.bench import screen_main

    return screen_main(args.contracts, tuple(args.dataset or ("loans", "iris")), args.baseline_rows)


def register(verbs) -> None:
    bench = verbs.add_parser("bench", help="benchmarks (commands, not tests)")
    actions = bench.add_subparsers(title="benchmarks", metavar="WHAT", required=True)
    ingest = actions.add_parser("ingest", help="hashing vs openssl, peak memory, import time, sizes")
    ingest.add_argument("--size-mib", type=int, default=1024, help="size of the test file (default 1 GiB)")
    ingest.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    ingest.set_defaults(func=_ingest)
    contracts = actions.add_parser("contracts", help="contract validation vs a bare pyarrow read")
    contracts.add_argument("--rows", type=int, default=5_000_000, help="rows of the 1x file (also 4x)")
    contracts.add_argument("--contracts", type=Path, default=Path("contracts"))
    contracts.add_argument(
        "--peers-python",
        help="a Python with pandas, pandera and great_expectations "
        "(make bench-contracts builds build/bench-venv) to compare with them too",
    )
    contracts.set_defaults(func=_contracts)
    unique = actions.add_parser("unique", help="memory per row of a unique: true column, per type")
    unique.add_argument("--rows", type=int, default=4_000_000, help="rows of each test file")
    unique.set_defaults(func=_unique)
    screen = actions.add_parser("screen", help="the poisoning screen: label flips detected, clean batches held")
    screen.add_argument("--contracts", type=Path, default=Path("contracts"))
    screen.add_argument(
        "--dataset", action="append", choices=("loans", "iris"), help="loans and iris (default); repeatable"
    )
    screen.add_argument(
        "--baseline-rows", type=int, help="learn a baseline of this many rows (default: the contract's)"
    )
    screen.set_defaults(func=_screen, dataset=None)

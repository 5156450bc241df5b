"""`mlvault bench ingest | contracts | unique | screen | model | serve`: benchmarks (commands, not tests)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlvault_tools.cli.base import input_directory, input_file, number, output_directory

ROWS = number(int, minimum=1)
CONTRACTS = input_directory("the contracts directory")


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


def _serve(args: argparse.Namespace) -> int:
    from mlvault_tools.bench_serve import serve_main

    return serve_main(args.rows, args.calls, args.train_rows)


def _model(args: argparse.Namespace) -> int:
    from mlvault_tools.bench_model import main

    return main(tuple(args.rows or (1_000_000, 10_000_000)), args.evaluate_rows, args.workdir)


def register(verbs) -> None:
    bench = verbs.add_parser("bench", help="benchmarks (commands, not tests)")
    actions = bench.add_subparsers(title="benchmarks", metavar="WHAT", required=True)
    ingest = actions.add_parser("ingest", help="hashing vs openssl, peak memory, import time, sizes")
    ingest.add_argument("--size-mib", type=ROWS, default=1024, help="size of the test file (default 1 GiB)")
    ingest.add_argument("--cdk-out", type=input_directory("the synthesized app (make synth)"), default=Path("cdk.out"))
    ingest.set_defaults(func=_ingest)
    contracts = actions.add_parser("contracts", help="contract validation vs a bare pyarrow read")
    contracts.add_argument("--rows", type=ROWS, default=5_000_000, help="rows of the 1x file (also 4x)")
    contracts.add_argument("--contracts", type=CONTRACTS, default=Path("contracts"))
    contracts.add_argument(
        "--peers-python",
        type=input_file("a Python interpreter"),
        help="a Python with pandas, pandera and great_expectations "
        "(make bench-contracts builds build/bench-venv) to compare with them too",
    )
    contracts.set_defaults(func=_contracts)
    unique = actions.add_parser("unique", help="memory per row of a unique: true column, per type")
    unique.add_argument("--rows", type=ROWS, default=4_000_000, help="rows of each test file")
    unique.set_defaults(func=_unique)
    screen = actions.add_parser("screen", help="the poisoning screen: label flips detected, clean batches held")
    screen.add_argument("--contracts", type=CONTRACTS, default=Path("contracts"))
    screen.add_argument(
        "--dataset", action="append", choices=("loans", "iris"), help="loans and iris (default); repeatable"
    )
    screen.add_argument(
        "--baseline-rows", type=ROWS, help="learn a baseline of this many rows (default: the contract's)"
    )
    screen.set_defaults(func=_screen, dataset=None)
    model = actions.add_parser(
        "model", help="bring your own model: prepare rows/s and peak RSS (1M, 10M rows), evaluate rows/s (ONNX)"
    )
    model.add_argument("--rows", type=ROWS, action="append", help="prepare this many rows (repeatable; 1M and 10M)")
    model.add_argument("--evaluate-rows", type=ROWS, default=1_000_000, help="held-out rows to evaluate")
    model.add_argument(
        "--workdir", type=output_directory, help="keep the generated data here (default: a temporary directory)"
    )
    model.set_defaults(func=_model)
    serve = actions.add_parser("serve", help="serving latency with attestation vs bare onnxruntime (credit model)")
    serve.add_argument("--rows", type=ROWS, default=100, help="rows per request (default 100)")
    serve.add_argument("--calls", type=ROWS, default=2000, help="warm calls of each kind (default 2000)")
    serve.add_argument("--train-rows", type=ROWS, default=20_000, help="rows the credit model is trained on")
    serve.set_defaults(func=_serve)

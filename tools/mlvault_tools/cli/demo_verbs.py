"""`mlvault demo`: the scripted story on a fresh local cloud."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlvault_tools.cli.base import output_directory
from mlvault_tools.cli.local_verbs import PORT


def _demo(args: argparse.Namespace) -> int:
    from mlvault_tools.demo import run

    return run(cdk_out=args.cdk_out, state_dir=args.state_dir, port=args.port)


def register(verbs) -> None:
    demo = verbs.add_parser("demo", help="run the scripted story on a fresh local cloud and print a summary")
    demo.add_argument("--port", type=PORT, default=0, help="port on 127.0.0.1 (default 0: a free one)")
    demo.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="the synthesized app (default: cdk.out)")
    demo.add_argument("--state-dir", type=output_directory, default=Path(".mlvault/demo"))
    demo.set_defaults(func=_demo)

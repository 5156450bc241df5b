"""The `mlvault` command line. Verbs are thin: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mlvault import __version__


def _local_up(args: argparse.Namespace) -> int:
    from mlvault.localcloud import control

    handle = control.up(cdk_out=args.cdk_out, state_dir=args.state_dir, port=args.port)
    print(
        f"local cloud ready at {handle.endpoint} (region {handle.region}, pid {handle.state['pid']}, "
        f"provisioned in {handle.state['startup_seconds']}s from {args.cdk_out})"
    )
    print('point the CLI and boto3 at it with:  eval "$(mlvault local env)"')
    return 0


def _local_down(args: argparse.Namespace) -> int:
    from mlvault.localcloud import control

    print("local cloud stopped" if control.down(args.state_dir) else "no local cloud was running")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    from mlvault.localcloud import control

    report = control.status(control.read(args.state_dir), recent=args.recent)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"local cloud at {report['endpoint']} (region {report['region']}, pid {report['pid']})")
    print("resources:")
    for type_, count in report["resources"].items():
        print(f"  {count:3d}  {type_}")
    print("queues (visible / in flight):")
    for name, depth in report["queues"].items():
        print(f"  {depth['visible']:4d} / {depth['in_flight']:<4d} {name}")
    print("functions:")
    for name, fn in report["functions"].items():
        print(f"  {name}  ({fn['handler']}; layers: {'; '.join(fn['layers'])})")
    print("recent events:")
    for event in report["recent_events"]:
        details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "kind"))
        print(f"  {event['at'][11:23]}  {event['kind']:<22} {details}")
    return 0


def _local_env(args: argparse.Namespace) -> int:
    from mlvault.localcloud import control

    for name, value in control.read(args.state_dir).environment().items():
        print(f"export {name}={value}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mlvault.demo import run

    return run(cdk_out=args.cdk_out, state_dir=args.state_dir, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlvault",
        description="mlvault: safety-first MLOps on AWS (zero-trust ingest, provenance-rich models).",
    )
    parser.add_argument("--version", action="version", version=f"mlvault {__version__}")
    parser.set_defaults(func=None)
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND")

    def local_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir",
            type=Path,
            default=Path(".mlvault/local"),
            help="where the local cloud keeps its state, logs and events (default: .mlvault/local)",
        )

    local = verbs.add_parser("local", help="the local cloud: the synthesized app running on moto, no AWS account")
    local_verbs = local.add_subparsers(title="local cloud commands", metavar="ACTION", required=True)
    up = local_verbs.add_parser("up", help="start the local cloud and provision it from cdk.out")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="the cloud assembly (default: cdk.out)")
    local_options(up)
    up.set_defaults(func=_local_up)
    down = local_verbs.add_parser("down", help="stop the local cloud")
    local_options(down)
    down.set_defaults(func=_local_down)
    status = local_verbs.add_parser("status", help="resources, queues, functions and recent events")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--recent", type=int, default=15, help="how many recent events to show")
    local_options(status)
    status.set_defaults(func=_local_status)
    env = local_verbs.add_parser("env", help="print exports that point boto3 and the CLI at the local cloud")
    local_options(env)
    env.set_defaults(func=_local_env)

    demo = verbs.add_parser("demo", help="run the scripted story on a fresh local cloud and print a summary")
    demo.add_argument("--port", type=int, default=0)
    demo.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    demo.add_argument("--state-dir", type=Path, default=Path(".mlvault/demo"))
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        from mlvault.errors import user_facing

        if not user_facing(err):
            raise
        print(f"mlvault: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

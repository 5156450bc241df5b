"""`mlvault local up | down | status | env`: the local cloud (the synthesized app running on moto)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlvault_tools.cli.base import OK, input_directory, json_option, number, output_directory, print_json

DEFAULT_STATE_DIR = Path(".mlvault/local")
PORT = number(int, minimum=0, maximum=65535)  # 0: a free one


def _state_option(args: argparse.Namespace) -> str:
    """` --state-dir X` when the verb was given another state directory than the default (for the hints)."""
    return "" if args.state_dir == DEFAULT_STATE_DIR else f" --state-dir {args.state_dir}"


def _up(args: argparse.Namespace) -> int:
    from localcloud import control

    handle = control.up(
        cdk_out=args.cdk_out,
        state_dir=args.state_dir,
        port=args.port,
        schedule_scale=args.schedule_scale,
        alarm_scale=args.alarm_scale,
    )
    print(
        f"local cloud ready at {handle.endpoint} (region {handle.region}, pid {handle.state['pid']}, "
        f"provisioned in {handle.state['startup_seconds']}s from {args.cdk_out})"
    )
    print(f'point the CLI and boto3 at it with:  eval "$(mlvault local env{_state_option(args)})"')
    return OK


def _down(args: argparse.Namespace) -> int:
    from localcloud import control

    print("local cloud stopped" if control.down(args.state_dir) else "no local cloud was running")
    return OK


def _status(args: argparse.Namespace) -> int:
    from localcloud import control

    report = control.status(control.read(args.state_dir), recent=args.recent)
    if args.json:
        print_json(report)
        return OK
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


def _env(args: argparse.Namespace) -> int:
    from localcloud import control

    for name, value in control.read(args.state_dir).environment().items():
        print(f"export {name}={value}")
    if args.state_dir != DEFAULT_STATE_DIR:  # so that hints name it (mlvault local up --state-dir ...)
        print(f"export MLVAULT_LOCAL_STATE_DIR={args.state_dir}")
    return OK


def _state_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state-dir",
        type=output_directory,
        default=DEFAULT_STATE_DIR,
        help="where the local cloud keeps its state, logs and events (default: .mlvault/local)",
    )


def register(verbs) -> None:
    local = verbs.add_parser("local", help="the local cloud: the synthesized app running on moto, no AWS account")
    actions = local.add_subparsers(title="local cloud commands", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the local cloud and provision it from cdk.out")
    up.add_argument("--port", type=PORT, default=0, help="port on 127.0.0.1, 1-65535 (default 0: a free one)")
    up.add_argument(
        "--schedule-scale",
        type=number(float, above=0),
        default=1.0,
        help="run rate(...) schedules N times faster (default 1: real time)",
    )
    up.add_argument(
        "--alarm-scale",
        type=number(float, above=0),
        help="evaluate CloudWatch alarms with periods N times shorter (default: the schedule scale)",
    )
    up.add_argument(
        "--cdk-out",
        type=input_directory("the cloud assembly `make synth` writes"),
        default=Path("cdk.out"),
        help="the cloud assembly (default: cdk.out)",
    )
    _state_dir_option(up)
    up.set_defaults(func=_up)
    down = actions.add_parser("down", help="stop the local cloud")
    _state_dir_option(down)
    down.set_defaults(func=_down)
    status = actions.add_parser("status", help="resources, queues, functions and recent events")
    json_option(status)
    status.add_argument("--recent", type=number(int, minimum=0), default=15, help="how many recent events to show")
    _state_dir_option(status)
    status.set_defaults(func=_status)
    env = actions.add_parser("env", help="print exports that point boto3 and the CLI at the local cloud")
    _state_dir_option(env)
    env.set_defaults(func=_env)

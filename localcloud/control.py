"""Starting, stopping and inspecting a local cloud from another process (the CLI, tests, the demo)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from localcloud.server import EVENTS_FILE, EXIT_PORT_UNAVAILABLE, STATE_FILE, PortError, check_port

DEFAULT_STATE_DIR = Path(".mlvault/local")
DEFAULT_CDK_OUT = Path("cdk.out")


class LocalCloudError(RuntimeError):
    """The local cloud could not be started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class Handle:
    state_dir: Path
    state: dict[str, Any]

    @property
    def endpoint(self) -> str:
        return self.state["endpoint"]

    @property
    def region(self) -> str:
        return self.state["region"]

    def client(self, service: str, **credentials: str) -> Any:
        developer = self.state["developer"]
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=credentials.get("aws_access_key_id", developer["access_key_id"]),
            aws_secret_access_key=credentials.get("aws_secret_access_key", developer["secret_access_key"]),
            aws_session_token=credentials.get("aws_session_token"),
        )

    def physical_id(self, stack_suffix: str, type_: str, logical_prefix: str = "") -> str:
        found = [
            r["id"]
            for stack, resources in self.state["resources"].items()
            if stack.endswith(stack_suffix)
            for logical, r in resources.items()
            if r["type"] == type_ and logical.startswith(logical_prefix)
        ]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} {logical_prefix}* in *{stack_suffix}, found {found}")
        return found[0]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        path = self.state_dir / EVENTS_FILE
        lines = path.read_text().splitlines() if path.exists() else []
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if kind is None or e.get("kind") == kind]

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 and the mlvault CLI at this local cloud."""
        developer = self.state["developer"]
        return {
            "MLVAULT_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": developer["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": developer["secret_access_key"],
        }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(state_dir: Path = DEFAULT_STATE_DIR) -> Handle:
    path = state_dir / STATE_FILE
    if not path.exists():
        raise LocalCloudError(f"no local cloud is running (no {path}); start one with `mlvault local up`")
    state = json.loads(path.read_text())
    if not _alive(state["pid"]):
        path.unlink(missing_ok=True)
        raise LocalCloudError(f"the local cloud (pid {state['pid']}) is gone; start one with `mlvault local up`")
    return Handle(state_dir=state_dir, state=state)


def up(
    *,
    cdk_out: Path = DEFAULT_CDK_OUT,
    state_dir: Path = DEFAULT_STATE_DIR,
    port: int = 0,
    timeout: float = 120.0,
    schedule_scale: float = 1.0,
    alarm_scale: float | None = None,
) -> Handle:
    """Start a local cloud in the background, provisioned from cdk_out; return once it is ready.

    `port`: on 127.0.0.1; 0 (the default) for a free one. A number that is no TCP port, or a port in use, is refused
    (LocalCloudError, one line) before the server process starts; a port taken meanwhile ends the server, which
    never takes another, and is reported the same way.
    `schedule_scale` > 1 runs rate(...) schedules that many times faster (to watch a 15-minute job locally).
    `alarm_scale` > 1 makes alarm periods that many times shorter (a 60 s period lasts 1 s with 60); unset,
    alarms follow `schedule_scale`."""
    try:
        running = read(state_dir)
    except LocalCloudError:
        running = None
    if running is not None:
        raise LocalCloudError(
            f"a local cloud is already running at {running.endpoint} (pid {running.state['pid']}); "
            "stop it with `mlvault local down`"
        )
    try:
        check_port(port)
    except PortError as err:
        raise LocalCloudError(str(err)) from None
    if not (cdk_out / "manifest.json").is_file():
        raise LocalCloudError(f"no synthesized app at {cdk_out}: run `make synth` first")
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localcloud.server",
            "--cdk-out",
            str(cdk_out),
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
            "--schedule-scale",
            str(schedule_scale),
            *(["--alarm-scale", str(alarm_scale)] if alarm_scale is not None else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / STATE_FILE).exists():
            handle = read(state_dir)
            if handle.state["pid"] == process.pid:
                return handle
        if process.poll() is not None:
            log_text = (state_dir / "server.log").read_text()
            if process.returncode == EXIT_PORT_UNAVAILABLE:  # the server's one line: the port it could not have
                last = [line for line in log_text.splitlines() if line.strip()][-1:] or ["its port could not be had"]
                raise LocalCloudError(f"the local cloud failed to start: {last[0].removeprefix('local cloud: ')}")
            last = [line.strip() for line in log_text.splitlines() if line.strip()][-1:] or ["no output"]
            raise LocalCloudError(
                f"the local cloud failed to start (exit {process.returncode}): {last[0][:300]} "
                f"(the whole log: {state_dir / 'server.log'})"
            )
        time.sleep(0.1)
    process.kill()
    raise LocalCloudError(f"the local cloud did not become ready within {timeout:.0f}s; see {state_dir}/server.log")


def down(state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 30.0) -> bool:
    """Stop the local cloud of state_dir. False when none was running."""
    try:
        handle = read(state_dir)
    except LocalCloudError:
        return False
    pid = handle.state["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return True


def status(handle: Handle, recent: int = 15) -> dict[str, Any]:
    """What runs in the local cloud now: resources by type, queue depths, functions, recent events."""
    counts: dict[str, int] = {}
    for resources in handle.state["resources"].values():
        for resource in resources.values():
            counts[resource["type"]] = counts.get(resource["type"], 0) + 1
    sqs = handle.client("sqs")
    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        queues[url.rsplit("/", 1)[-1]] = {
            "visible": int(attributes["ApproximateNumberOfMessages"]),
            "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        }
    return {
        "endpoint": handle.endpoint,
        "region": handle.region,
        "pid": handle.state["pid"],
        "resources": dict(sorted(counts.items())),
        "queues": queues,
        "functions": handle.state["functions"],
        "recent_events": handle.events()[-recent:],
    }

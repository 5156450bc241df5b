"""The local cloud process: a moto server on 127.0.0.1, the gaps closed, the cloud assembly provisioned.

Run by `mlvault local up` as `python -m localcloud.server`; it writes its state file once ready and
serves until SIGTERM. It listens on the port it is given (0: a free one) or on none: a port that is no TCP port or
that it cannot bind on 127.0.0.1 ends it at once, before the cloud assembly is read, with one line on stderr and exit
status EXIT_PORT_UNAVAILABLE (control.up reports that line).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from localcloud import ACCOUNT_ID
from localcloud.authz import Authorizer
from localcloud.cdkout import AssemblyError, load_assembly
from localcloud.intrinsics import UnsupportedError
from localcloud.provision import Deployment, Provisioner
from localcloud.resources.cfn_context import ProvisioningError
from localcloud.runtime import Invocation, LambdaRuntime, access_key_for
from localcloud.services.lambda_code import CodeStore, DeployedCode
from localcloud.services.signing_jobs import Signer

STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
DEVELOPER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/local-developer"
DEVELOPER_ACCESS_KEY = "LKIALOCALDEVELOPER"
SECRET = "local-cloud"  # noqa: S105 - the local cloud accepts any secret; not a credential
HOST = "127.0.0.1"  # the only address the local cloud listens on
MAX_PORT = 65535
LISTEN_BACKLOG = 128  # werkzeug's own
EXIT_PORT_UNAVAILABLE = 3  # main's exit status when the port it was given cannot be had


class PortError(ValueError):
    """The port asked for is no TCP port, or cannot be bound on HOST: the local cloud does not start (it never takes
    another one). The message is one line."""


def listen(port: int) -> socket.socket:
    """A socket listening on HOST:`port` (0: a free one), set up as the server's own (SO_REUSEADDR, as werkzeug: a
    port an earlier cloud left in TIME_WAIT is free); PortError when `port` is no TCP port or cannot be bound."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_PORT:
        raise PortError(
            f"port {port!r} is not a TCP port: give one from 1 to {MAX_PORT}, or omit --port for a free one"
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as err:
        sock.close()
        cause = (err.strerror or str(err)).lower()
        why = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be bound ({cause})"
        raise PortError(f"port {port} on {HOST} {why}: give another --port or omit it for a free one") from None
    return sock


def check_port(port: int) -> None:
    """PortError unless the server could listen on `port` now (control.up asks before it starts the server)."""
    listen(port).close()


class MotoServer:
    """moto's server application (what moto's ThreadedMotoServer runs) on a socket already listening: it serves
    that socket's port or none. (ThreadedMotoServer binds in its own thread: on a port in use that thread exits and
    its start() waits forever.)"""

    def __init__(self, listening: socket.socket) -> None:
        self._socket = listening
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        host, port = self._socket.getsockname()[:2]
        self._server = make_server(host, port, app, True, request_handler=MotoRequestHandler, fd=self._socket.fileno())
        self._socket.close()  # the server serves its own duplicate of it
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="moto-server")
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), port

    def stop(self) -> None:
        self._socket.close()  # if never started
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()


class LocalCloud:
    def __init__(
        self,
        *,
        cdk_out: Path,
        state_dir: Path,
        port: int = 0,
        schedule_scale: float = 1.0,
        alarm_scale: float | None = None,
    ) -> None:
        if schedule_scale <= 0:
            raise ValueError(f"schedule_scale must be positive, got {schedule_scale}")
        if alarm_scale is not None and alarm_scale <= 0:
            raise ValueError(f"alarm_scale must be positive, got {alarm_scale}")
        self.schedule_scale = schedule_scale
        # alarm periods last Period / alarm_scale seconds (alarms.py, gap 13); unset, schedules' scale
        self.alarm_scale = schedule_scale if alarm_scale is None else alarm_scale
        self.cdk_out = cdk_out.resolve()
        self.state_dir = state_dir.resolve()  # workers run in their asset directories: never write relative paths
        self.account = ACCOUNT_ID
        self.port = port
        self.endpoint = ""
        self.region = ""
        self._server: Any = None
        self._events_lock = threading.Lock()
        self.deployment = Deployment(account=ACCOUNT_ID)
        self.deployer_arn = ""  # the CDK bootstrap's CloudFormation execution role: an administrator
        self.authorizer = Authorizer(self)  # every request (gap 14)
        self.signer = Signer(self)  # signing jobs and their key (gap 19)
        self._code = CodeStore(self.state_dir / "code")  # the deployed code of every function version (gap 21)
        self.runtime: LambdaRuntime | None = None
        self.training: Any = None  # SageMaker training jobs (gap 23, services/sagemaker_jobs.py)
        self.function_urls: Any = None  # Lambda function URLs (gap 25, services/function_urls.py)
        self.poller: Any = None
        self._stopping = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        # The port first: one it cannot have ends the start (PortError) before anything is read, written or served.
        listening = listen(self.port)
        from moto.awslambda.models import lambda_backends

        from localcloud import alarms, emf, gaps
        from localcloud.pollers import SqsPoller

        self._server = MotoServer(listening)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / EVENTS_FILE).write_text("")
        for old_log in (self.state_dir / "logs").glob("*.log"):
            old_log.unlink()  # a fresh cloud: logs of an earlier run would mislead
        stacks = load_assembly(self.cdk_out)
        regions = {s.region for s in stacks}
        if len(regions) != 1:
            raise UnsupportedError(f"stacks in several regions {sorted(regions)}: the local cloud runs one region")
        self.region = regions.pop()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"  # roles may attach AWS managed policies
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        self.endpoint = f"http://{HOST}:{self.port}"
        self.runtime = LambdaRuntime(
            endpoint=self.endpoint,
            region=self.region,
            state_dir=self.state_dir,
            record=self.record,
            send_to_dlq=self._send_to_dlq,
            deployed=self._deployed_code,
            emf=lambda function, line: emf.put_emf(self, function, line),
        )
        gaps.install(self)
        self.deployment.principals[DEVELOPER_ACCESS_KEY] = DEVELOPER_ARN
        deployer = (
            stacks[0].execution_role_arn.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", self.account)
        )
        self.deployer_arn = deployer
        self.deployment.principals[access_key_for(deployer)] = deployer
        Provisioner(
            lambda service, region: self.client(service, deployer), self.deployment, invoke=self._provision_invoke
        ).deploy(stacks)
        for spec in self.deployment.functions.values():
            self.runtime.register(spec)
        self.poller = SqsPoller(client=self.client, invoke=self.runtime.invoke, region=self.region, record=self.record)
        lambda_client = self.client("lambda", deployer)
        for uuid in self.deployment.event_source_mappings:
            mapping = lambda_client.get_event_source_mapping(UUID=uuid)
            name = mapping["FunctionArn"].split(":")[6]
            spec = self.deployment.functions[name]
            self.poller.add(
                mapping,
                function_name=name,
                role_arn=spec.role_arn,
                environment=lambda n=name: self.runtime.environment_of(n),
                live=lambda u=uuid: lambda_backends[self.account][self.region].get_event_source_mapping(u),
            )
        self.poller.start()
        self._scheduler = threading.Thread(target=self._run_schedules, daemon=True, name="schedules")
        self._scheduler.start()
        self._alarms = alarms.AlarmEvaluator(self, self.alarm_scale)
        try:
            self._alarms.evaluate()  # first verdicts before anyone looks (gap 13)
        except Exception as err:  # noqa: BLE001 - the thread retries; never keep the cloud from starting
            self.record({"kind": "alarm-evaluation-error", "error": repr(err)})
        threading.Thread(target=self._run_alarms, daemon=True, name="alarms").start()
        self.record({"kind": "ready", "endpoint": self.endpoint, "stacks": [s.name for s in stacks]})

    def _run_schedules(self) -> None:
        from localcloud.services.eventbridge import fire_schedules

        last: dict[str, float] = {}
        while not self._stopping.wait(1.0 if self.schedule_scale <= 1 else 0.1):
            try:
                fire_schedules(self, time.monotonic() * self.schedule_scale, last)
            except Exception as err:  # noqa: BLE001 - keep the schedule running; the failure is recorded
                self.record({"kind": "schedule-error", "error": repr(err)})

    def _run_alarms(self) -> None:
        failures: set[str] = set()
        while not self._stopping.wait(0.5 if self.alarm_scale > 1 else 1.0):
            try:
                self._alarms.evaluate()
            except Exception as err:  # noqa: BLE001 - keep evaluating; each distinct failure is recorded once
                if repr(err) not in failures:
                    failures.add(repr(err))
                    self.record({"kind": "alarm-evaluation-error", "error": repr(err)})

    def stop(self) -> None:
        self._stopping.set()
        if self.poller is not None:
            self.poller.stop()
        if self.runtime is not None:
            self.runtime.close()
        if self.training is not None:
            self.training.close()
        if self._server is not None:
            self._server.stop()

    # --- services used by the gaps, the runtime and the poller ----------------------------------------

    def client(self, service: str, principal_arn: str | None = None) -> Any:
        key = access_key_for(principal_arn) if principal_arn else DEVELOPER_ACCESS_KEY
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=key,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 2}),
        )

    def principal_for(self, access_key: str) -> str | None:
        """The principal a request is made as (authz.py): None for a key the account does not know."""
        caller = self.authorizer.caller(access_key)
        return caller.arn if caller is not None else None

    def record(self, event: dict[str, Any]) -> None:
        line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="milliseconds"), **event}, default=str)
        with self._events_lock, (self.state_dir / EVENTS_FILE).open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    def _deployed_code(self, name: str, version: str) -> DeployedCode:
        from moto.awslambda.models import lambda_backends

        backend = lambda_backends[self.account][self.region]
        fn = backend._lambdas.get_function_by_name_with_qualifier(name, None if version == "$LATEST" else version)
        return self._code.deployed(fn, backend.layers_versions_by_arn)

    def _provision_invoke(self, name: str, event: dict[str, Any]) -> Invocation:
        """A custom resource's provider, run as CloudFormation runs it: synchronously, as the function's $LATEST."""
        spec = self.deployment.functions[name]
        self.runtime.register(spec)
        return self.runtime.invoke(name, event, self.runtime.environment_of(name), source="cloudformation")

    def _send_to_dlq(self, queue_arn: str, body: str, role_arn: str) -> None:
        """Lambda sends a failed asynchronous event to the function's DLQ with the function's execution role."""
        from moto.sqs.models import sqs_backends

        from localcloud.authz import AccessDenied
        from localcloud.iam_actions import Need

        try:
            self.authorizer.authorize(
                self.authorizer.caller_for_role(role_arn), "sqs", Need("sqs:SendMessage", queue_arn)
            )
        except AccessDenied as denied:
            self.record({"kind": "dead-letter-failed", "target": queue_arn, "error": denied.message})
            return
        sqs_backends[self.account][queue_arn.split(":")[3]].send_message(
            queue_name=queue_arn.split(":")[5], message_body=body
        )

    def state(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "port": self.port,
            "region": self.region,
            "account": self.account,
            "cdk_out": str(self.cdk_out.resolve()),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "developer": {"access_key_id": DEVELOPER_ACCESS_KEY, "secret_access_key": SECRET, "arn": DEVELOPER_ARN},
            "resources": {
                stack: {logical: {"type": t, "id": p} for logical, (t, p) in resources.items()}
                for stack, resources in self.deployment.resources.items()
            },
            "functions": {name: self._function_state(s) for name, s in self.deployment.functions.items()},
        }

    def _function_state(self, spec: Any) -> dict[str, Any]:
        deployed = self._deployed_code(spec.name, "$LATEST")
        return {
            "arn": spec.arn,
            "handler": deployed.handler,
            "code": str(deployed.code_dir),
            "layers": self.runtime.layer_report(spec) if self.runtime else [],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.server")
    parser.add_argument("--cdk-out", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--schedule-scale", type=float, default=1.0)
    parser.add_argument("--alarm-scale", type=float, default=None, help="default: the schedule scale")
    args = parser.parse_args(argv)
    cloud = LocalCloud(
        cdk_out=args.cdk_out,
        state_dir=args.state_dir,
        port=args.port,
        schedule_scale=args.schedule_scale,
        alarm_scale=args.alarm_scale,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        started = time.monotonic()
        cloud.start()
        state = cloud.state() | {"startup_seconds": round(time.monotonic() - started, 2)}
        tmp = args.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(args.state_dir / STATE_FILE)
        print(f"local cloud ready at {cloud.endpoint}", flush=True)
        stopping.wait()
    except PortError as err:
        print(f"local cloud: {err}", file=sys.stderr, flush=True)
        return EXIT_PORT_UNAVAILABLE
    except (AssemblyError, UnsupportedError, ProvisioningError) as err:
        print(f"local cloud: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        cloud.stop()
        (args.state_dir / STATE_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

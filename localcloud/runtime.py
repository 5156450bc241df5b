"""The local Lambda runtime: each function version runs its real handler from the code it was deployed with
(services/lambda_code.py, gap 21: the zip or S3 object version of its CreateFunction, UpdateFunctionCode or
PublishVersion, extracted under the state directory), in worker processes of its own (worker.py), with its own
environment and its execution role's credentials, as Lambda execution environments do. Third-party layers are
provided by the local venv (their wheels target Lambda's Python); first-party layers come from their zips.

Every invocation path ends here: moto's Invoke API, Step Functions tasks and S3 notifications through the
patched `LambdaFunction._invoke_lambda` (services/awslambda.py), SQS event source mappings through the poller,
EventBridge targets and S3/EventBridge asynchronous events through `invoke_async` (retries, then the function's
DLQ).
Every line a function prints goes to its log file; lines carrying `"_aws"` also go to the `emf` callback, which
extracts Embedded Metric Format metrics as CloudWatch Logs does (emf.py, gap 12).

A published version runs with its own environment and code and reports its number
(`AWS_LAMBDA_FUNCTION_VERSION`, `context.function_version`): workers are kept per (environment, version, deployed
code), up to MAX_WORKERS_PER_FUNCTION
processes per function, so invocations alternating between the two versions of a weighted alias reuse warm
workers; the least recently used idle worker makes room for a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.deployment import FunctionSpec
from localcloud.services.lambda_code import DeployedCode

WORKER = Path(__file__).with_name("worker.py")
MAX_WORKERS_PER_FUNCTION = 4
ASYNC_RETRIES = 2  # Lambda's default MaximumRetryAttempts for asynchronous invocations


def access_key_for(principal_arn: str) -> str:
    """A stable local access key id standing for a principal (functions sign requests with their role's)."""
    return "LKIA" + hashlib.sha256(principal_arn.encode()).hexdigest()[:16].upper()


@dataclass
class Invocation:
    payload: str
    errored: bool
    logs: str
    duration_ms: int


@dataclass
class _Worker:
    process: subprocess.Popen
    responses: Any
    env: dict[str, str] = field(default_factory=dict)
    version: str = "$LATEST"
    code: str = ""  # DeployedCode.identity
    lines: list[str] = field(default_factory=list)


class LambdaRuntime:
    def __init__(
        self,
        *,
        endpoint: str,
        region: str,
        state_dir: Path,
        record: Callable[[dict[str, Any]], None],
        send_to_dlq: Callable[[str, str, str], None],
        deployed: Callable[[str, str], DeployedCode],
        emf: Callable[[str, str], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._region = region
        self._state_dir = state_dir
        self._record = record
        self._send_to_dlq = send_to_dlq  # (queue ARN, body, role ARN of the function)
        self._deployed = deployed  # (function name, version) -> the code and configuration that version runs
        self._emf = emf
        self._functions: dict[str, FunctionSpec] = {}
        self._idle: dict[str, list[_Worker]] = {}
        self._busy: dict[str, int] = {}
        self._cond = threading.Condition()
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-async")
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)

    def register(self, spec: FunctionSpec) -> None:
        self._functions[spec.name] = spec

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        return dict(self._functions)

    def deployed(self, name: str, version: str = "$LATEST") -> DeployedCode:
        return self._deployed(name, version)

    def layer_report(self, spec: FunctionSpec) -> list[str]:
        return [
            f"{layer.name}: {'third-party (from the local venv)' if layer.third_party else 'first-party'}"
            for layer in self._deployed(spec.name, "$LATEST").layers
        ]

    # --- invocation -----------------------------------------------------------------------------------

    def invoke(
        self,
        name: str,
        event: Any,
        environment: dict[str, str],
        *,
        source: str = "invoke",
        version: str = "$LATEST",
        invoked_arn: str | None = None,
    ) -> Invocation:
        """Run the handler once, synchronously (RequestResponse), as `version` of the function with `environment`.

        `invoked_arn` is the ARN the caller named (qualified by an alias or a version): the handler's
        `context.invoked_function_arn`."""
        spec = self._functions.get(name)
        if spec is None:
            return Invocation(
                json.dumps({"errorMessage": f"function {name} has no local runtime", "errorType": "ResourceNotFound"}),
                True,
                "",
                0,
            )
        try:
            code = self._deployed(name, version)
        except Exception as err:  # noqa: BLE001 - reported to the caller as Lambda reports a broken deployment
            return Invocation(json.dumps({"errorMessage": str(err), "errorType": "Runtime.InvalidCode"}), True, "", 0)
        worker = self._acquire(spec, code, environment, version)
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        try:
            result = self._run(worker, code, event, request_id, invoked_arn)
        finally:
            self._release(spec.name, worker)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        self._record(
            {
                "kind": "invoke",
                "function": name,
                "version": version,
                "source": source,
                "request_id": request_id,
                "errored": result.errored,
                "duration_ms": result.duration_ms,
            }
        )
        return result

    def invoke_async(
        self,
        name: str,
        event: Any,
        environment: dict[str, str] | None = None,
        *,
        source: str = "event",
        version: str = "$LATEST",
        invoked_arn: str | None = None,
    ) -> None:
        """Asynchronous invocation (Event): retried twice on error, then sent to the function's DLQ.
        Without an environment, $LATEST's current one."""
        self._async.submit(self._invoke_with_retries, name, event, environment, source, version, invoked_arn)

    def _invoke_with_retries(
        self,
        name: str,
        event: Any,
        environment: dict[str, str] | None,
        source: str,
        version: str = "$LATEST",
        invoked_arn: str | None = None,
    ) -> None:
        spec = self._functions.get(name)
        env = environment if environment is not None else self.environment_of(name)
        result = None
        for _ in range(1 + ASYNC_RETRIES):
            result = self.invoke(name, event, env, source=source, version=version, invoked_arn=invoked_arn)
            if not result.errored:
                return
        if spec is not None and spec.dead_letter_arn and result is not None:
            self._send_to_dlq(spec.dead_letter_arn, json.dumps(event), self._deployed(name, version).role_arn)
            self._record({"kind": "dead-letter", "function": name, "source": source, "target": spec.dead_letter_arn})

    def environment_of(self, name: str) -> dict[str, str]:
        from moto.awslambda.models import lambda_backends

        from localcloud import ACCOUNT_ID

        fn = lambda_backends[ACCOUNT_ID][self._region].get_function(name)
        return dict(fn.environment_vars or {})

    # --- workers --------------------------------------------------------------------------------------

    def _acquire(self, spec: FunctionSpec, code: DeployedCode, environment: dict[str, str], version: str) -> _Worker:
        with self._cond:
            while True:
                idle = self._idle.setdefault(spec.name, [])
                for dead in [w for w in idle if w.process.poll() is not None]:
                    idle.remove(dead)
                    _stop(dead)
                warm = next(
                    (
                        w
                        for w in reversed(idle)
                        if w.env == environment and w.version == version and w.code == code.identity
                    ),
                    None,
                )
                if warm is not None:
                    idle.remove(warm)
                    self._busy[spec.name] = self._busy.get(spec.name, 0) + 1
                    return warm
                if self._busy.get(spec.name, 0) < MAX_WORKERS_PER_FUNCTION:
                    self._busy[spec.name] = self._busy.get(spec.name, 0) + 1
                    while idle and len(idle) + self._busy[spec.name] > MAX_WORKERS_PER_FUNCTION:
                        _stop(idle.pop(0))  # the least recently used idle worker makes room
                    break
                self._cond.wait()
        try:
            return self._spawn(spec, code, environment, version)
        except BaseException:
            with self._cond:
                self._busy[spec.name] -= 1
                self._cond.notify_all()
            raise

    def _release(self, name: str, worker: _Worker) -> None:
        with self._cond:
            self._busy[name] -= 1
            if worker.process.poll() is None:
                self._idle.setdefault(name, []).append(worker)
            self._cond.notify_all()

    def _spawn(self, spec: FunctionSpec, code: DeployedCode, environment: dict[str, str], version: str) -> _Worker:
        read_fd, write_fd = os.pipe()
        code_path = code.python_path
        stream = f"{time.strftime('%Y/%m/%d')}/[{version}]{uuid.uuid4().hex}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(code_path),
            # the worker refuses any other top-level package from the venv (the function's code and first-party
            # layers are on PYTHONPATH; the standard library is always there)
            "MLVAULT_LOCAL_PROVIDED_PACKAGES": ",".join(code.provided_packages),
            "PYTHONPYCACHEPREFIX": str(self._state_dir / "pycache"),
            "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": access_key_for(code.role_arn),
            "AWS_SECRET_ACCESS_KEY": "local-cloud",
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_ENDPOINT_URL": self._endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(code.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group or f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "LAMBDA_TASK_ROOT": str(code.code_dir),
            "_HANDLER": code.handler,
            "MLVAULT_LOCAL_FUNCTION_ARN": spec.arn,
            **environment,
        }
        process = subprocess.Popen(
            [sys.executable, str(WORKER), str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=(write_fd,),
            text=True,
            cwd=str(code.code_dir),
        )
        os.close(write_fd)
        worker = _Worker(
            process=process,
            responses=os.fdopen(read_fd, "r"),
            env=dict(environment),
            version=version,
            code=code.identity,
        )
        log_path = self._state_dir / "logs" / f"{spec.name}.log"
        emf = None if self._emf is None else (lambda line, name=spec.name: self._emf(name, line))
        threading.Thread(target=_pump, args=(worker, log_path, emf), daemon=True, name=f"logs-{spec.name}").start()
        self._record(
            {"kind": "cold-start", "function": spec.name, "version": version, "code": code.identity, "pid": process.pid}
        )
        return worker

    def _run(
        self, worker: _Worker, code: DeployedCode, event: Any, request_id: str, invoked_arn: str | None = None
    ) -> Invocation:
        deadline = time.time() + code.timeout
        start_line = len(worker.lines)
        request = {"event": event, "request_id": request_id, "deadline": deadline}
        if invoked_arn:
            request["invoked_function_arn"] = invoked_arn
        try:
            worker.process.stdin.write(json.dumps(request) + "\n")
            worker.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died(worker, start_line)
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(worker.responses.readline()), daemon=True)
        reader.start()
        reader.join(code.timeout)
        if reader.is_alive():
            _stop(worker)
            message = f"Task timed out after {code.timeout:.2f} seconds"
            return Invocation(
                json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"}),
                True,
                _logs(worker, start_line),
                0,
            )
        if not result or not result[0]:
            return self._died(worker, start_line)
        time.sleep(0.01)  # let the log pump catch up with the handler's last lines
        response = json.loads(result[0])
        return Invocation(json.dumps(response["payload"]), not response["ok"], _logs(worker, start_line), 0)

    def _died(self, worker: _Worker, start_line: int) -> Invocation:
        worker.process.wait(timeout=5)
        time.sleep(0.05)
        logs = _logs(worker, start_line)
        return Invocation(
            json.dumps(
                {
                    "errorMessage": f"Runtime exited with code {worker.process.returncode}: "
                    f"{logs.strip().splitlines()[-1] if logs.strip() else 'no output'}",
                    "errorType": "Runtime.ExitError",
                }
            ),
            True,
            logs,
            0,
        )

    def close(self) -> None:
        self._async.shutdown(wait=False, cancel_futures=True)
        with self._cond:
            for workers in self._idle.values():
                for worker in workers:
                    _stop(worker)
            self._idle.clear()


def _pump(worker: _Worker, log_path: Path, emf: Callable[[str], None] | None = None) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        for line in worker.process.stdout:
            worker.lines.append(line)
            log.write(line)
            log.flush()
            if emf is not None and '"_aws"' in line:
                try:
                    emf(line)
                except Exception as err:  # noqa: BLE001 - metric extraction must never stop the function's logs
                    log.write(f"[local cloud] EMF extraction failed: {err!r}\n")


def _logs(worker: _Worker, start_line: int) -> str:
    return "".join(worker.lines[start_line:])


def _stop(worker: _Worker) -> None:
    if worker.process.poll() is None:
        worker.process.kill()
        worker.process.wait(timeout=5)

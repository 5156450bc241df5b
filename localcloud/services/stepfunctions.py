"""Step Functions: execution, task credentials and Wait states (gap 7).

7. Step Functions. moto only executes definitions when configured to; its Lambda tasks call localhost:MOTO_PORT
   signed with a fixed "ak" key, whoever the state machine's role is; its Wait states sleep their full wall-clock
   duration. Here execution is on, MOTO_PORT is this server's port, and every service call of a task (Lambda
   invocations among them) is signed with the local key of the role the task runs with (the state machine's
   execution role, or the task's Credentials.RoleArn), so that role's policies decide it as in AWS (authz.py).
   A Wait state of W seconds (Seconds, SecondsPath, Timestamp or TimestampPath) lasts W / alarm_scale seconds of
   wall time, the scale alarm periods run at (alarms.py, gap 13: `--alarm-scale`, by default the schedule
   scale): a canary's bake of 5 minutes judged by alarms of 1-minute periods still spans five alarm periods.
   Unscaled (alarm_scale 1) a Wait lasts as long as in AWS. Execution timestamps, history and the output of a
   Wait are unchanged; only the time the execution spends waiting shrinks.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    os.environ["MOTO_PORT"] = str(cloud.port)
    _task_credentials(cloud)
    _scaled_waits(cloud)


def _task_credentials(cloud: LocalCloud) -> None:
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    from localcloud.runtime import access_key_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role = getattr(state_credentials, "role_arn", None)
        if not role:
            raise RuntimeError(f"a Step Functions task called {service} without a role: the local cloud signs none")
        return boto3.client(
            service,
            endpoint_url=cloud.endpoint,
            region_name=region,
            aws_access_key_id=access_key_for(role),
            aws_secret_access_key="local-cloud",  # noqa: S106 - the local cloud accepts any secret
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
        )

    boto_client.boto_client_for = boto_client_for  # modules imported from now on take this one
    for name, module in list(sys.modules.items()):  # those imported already
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is not None:
            module.boto_client_for = boto_client_for


def _scaled_waits(cloud: LocalCloud) -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        deadline = time.monotonic() + max(0, wait_seconds) / cloud.alarm_scale
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if env.program_state_event.wait(remaining):
                time.sleep(min(remaining, 0.01))  # an unrelated wake-up: keep waiting, never spin

    WaitFunction._wait_interval = _wait_interval

"""EventBridge: Lambda and Step Functions targets, and schedules (gap 5).

5. EventBridge targets and schedules. moto raises NotImplementedError for Lambda and Step Functions targets,
   matches every event to a schedule rule (it has no pattern) and never runs schedules. Here Lambda targets are
   invoked asynchronously and Step Functions targets start a named execution (other targets go to moto);
   schedule rules receive only their `Scheduled Event`s, which the local cloud emits for `rate(...)`
   expressions (`cron(...)` fails provisioning loudly): `fire_schedules` is run by the server's schedule thread,
   `rate_seconds` checks an expression when its rule is provisioned.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from localcloud.intrinsics import UnsupportedError
from localcloud.services.awslambda import invoke_target_async

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    from moto.events.models import Rule
    from moto.stepfunctions.responses import get_backend as sfn_backend

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        if self.scheduled_expression and original_event.get("detail-type") != "Scheduled Event":
            return  # a schedule rule has no pattern: moto would match every event to it
        rest = []
        for target in self.targets:
            service = target["Arn"].split(":")[2]
            if service not in ("lambda", "states"):
                rest.append(target)
                continue
            event = _aws_event_shape(original_event, self.account_id)
            payload = json.loads(target["Input"]) if "Input" in target else event
            region = target["Arn"].split(":")[3]
            if service == "lambda":
                invoke_target_async(cloud, target["Arn"], payload, f"events:{self.name}")
            else:
                name = f"{self.name}-{uuid.uuid4().hex[:12]}"[:80]
                sfn_backend(self.account_id, region).start_execution(target["Arn"], name, json.dumps(payload))
            cloud.record(
                {
                    "kind": "eventbridge-target",
                    "rule": self.name,
                    "target": target["Arn"],
                    "detail-type": event.get("detail-type"),
                }
            )
        if rest:
            clone = object.__new__(Rule)
            clone.__dict__.update(self.__dict__)
            clone.targets = rest
            original(clone, original_event, transform_input)

    Rule.send_to_targets = send_to_targets


def fire_schedules(cloud: LocalCloud, now: float, last: dict[str, float]) -> None:
    """Emit `Scheduled Event`s of enabled rate(...) rules whose interval elapsed since the last (or the start)."""
    from moto.events.models import events_backends

    for bus in events_backends[cloud.account][cloud.region].event_buses.values():
        for rule in list(bus.rules.values()):
            if not rule.scheduled_expression or rule.state != "ENABLED":
                continue
            interval = rate_seconds(rule.scheduled_expression)
            started = last.setdefault(rule.arn, now)
            if now - started >= interval:
                last[rule.arn] = now
                rule.send_to_targets(
                    {
                        "version": "0",
                        "id": str(uuid.uuid4()),
                        "detail-type": "Scheduled Event",
                        "source": "aws.events",
                        "account": cloud.account,
                        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "region": cloud.region,
                        "resources": [rule.arn],
                        "detail": {},
                    }
                )
                cloud.record({"kind": "scheduled-event", "rule": rule.name})


def rate_seconds(expression: str) -> float:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise UnsupportedError(f"schedule expression {expression!r} (the local cloud runs rate(...) only)")
    return int(match.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]


def _aws_event_shape(event: dict[str, Any], account: str) -> dict[str, Any]:
    shaped = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(shaped.get("time"), int | float):
        shaped["time"] = datetime.fromtimestamp(shaped["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shaped.setdefault("account", account)
    return shaped

"""EventBridge: Lambda and Step Functions targets, schedules (gap 5), and events of AWS sources (gap 17).

5. EventBridge targets and schedules. moto raises NotImplementedError for Lambda and Step Functions targets,
   matches every event to a schedule rule (it has no pattern) and never runs schedules. Here Lambda targets are
   invoked asynchronously and Step Functions targets start a named execution (other targets go to moto), each
   only if AWS would let EventBridge deliver: the function's resource policy must allow events.amazonaws.com to
   invoke it for this rule (aws:SourceArn, aws:SourceAccount), the Step Functions target's role must trust
   events.amazonaws.com and be allowed states:StartExecution on the state machine; a delivery AWS would fail
   is recorded (`eventbridge-target-failed`) and not made. Schedule rules receive only their `Scheduled
   Event`s, which the local cloud emits for `rate(...)` expressions (`cron(...)` fails provisioning loudly):
   `fire_schedules` is run by the server's schedule thread. A rate expression is what AWS accepts: a positive
   integer, the unit singular for 1 (`rate(1 minute)`) and plural otherwise (`rate(5 minutes)`); PutRule
   refuses any other with ValidationException `Parameter ScheduleExpression is not valid.` (moto accepted
   `rate(0 minutes)` and `rate(1 minutes)`).
17. Events of AWS sources. moto's PutEvents accepts any Source. AWS reserves sources starting with `aws.` to
   its services: such an entry of a PutEvents call fails on its own, with ErrorCode
   NotAuthorizedForSourceException, while the other entries of the call are put (FailedEntryCount counts it).
   Here PutEvents entries are checked so; the events the local cloud itself emits for AWS services (alarm
   state changes, schedules) are put on the bus directly, as the services do.
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


class InvalidSchedule(ValueError):
    """A schedule expression AWS refuses."""


def install(cloud: LocalCloud) -> None:
    _targets(cloud)
    _put_events()
    _put_rule()


def _put_events() -> None:
    from moto.events.responses import EventsHandler

    def put_events(self: Any) -> str:
        entries = self._get_param("Entries") or []
        allowed = [e for e in entries if not str(e.get("Source", "")).startswith("aws.")]
        results = iter(self.events_backend.put_events(allowed) if allowed else [])
        out = [
            {"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "Not authorized for the source."}
            if str(e.get("Source", "")).startswith("aws.")
            else next(results)
            for e in entries
        ]
        return json.dumps({"FailedEntryCount": len([e for e in out if "ErrorCode" in e]), "Entries": out})

    EventsHandler.put_events = put_events


def _put_rule() -> None:
    from moto.events.exceptions import ValidationException
    from moto.events.models import EventsBackend

    original = EventsBackend.put_rule

    def put_rule(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        expression = kwargs.get("scheduled_expression")
        if expression and expression.strip().startswith("rate("):
            try:
                rate_seconds(expression)
            except InvalidSchedule:
                raise ValidationException("Parameter ScheduleExpression is not valid.") from None
        return original(self, name, *args, **kwargs)

    EventsBackend.put_rule = put_rule


def _targets(cloud: LocalCloud) -> None:
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
            refusal = _undeliverable(cloud, self, target)
            if refusal:
                cloud.record(
                    {"kind": "eventbridge-target-failed", "rule": self.name, "target": target["Arn"], "reason": refusal}
                )
                continue
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
    """The interval of a rate(...) expression; InvalidSchedule for one AWS refuses, UnsupportedError for cron."""
    text = expression.strip()
    if not text.startswith("rate("):
        raise UnsupportedError(f"schedule expression {expression!r} (the local cloud runs rate(...) only)")
    match = re.fullmatch(r"rate\(([0-9]+) (minute|minutes|hour|hours|day|days)\)", text)
    if not match:
        raise InvalidSchedule(f"{expression!r} is not a rate expression: rate(<positive integer> <unit>)")
    value, unit = int(match.group(1)), match.group(2)
    if value < 1:
        raise InvalidSchedule(f"{expression!r}: the value must be a positive integer")
    if (value == 1) == unit.endswith("s"):
        raise InvalidSchedule(f"{expression!r}: the unit is singular for 1 and plural otherwise")
    return value * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]


def _undeliverable(cloud: LocalCloud, rule: Any, target: dict[str, Any]) -> str:
    """Why EventBridge could not deliver to a Lambda or Step Functions target, or "" if it can."""
    from localcloud.iam_actions import Need
    from localcloud.iam_policy import Request, allowing_statement, denying_statement

    arn = target["Arn"]
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": cloud.account, "aws:SecureTransport": "true"}
    if arn.split(":")[2] == "lambda":
        policy = cloud.authorizer.resource_policy("lambda", Need("lambda:InvokeFunction", arn))[0]
        request = Request("", "lambda:InvokeFunction", arn, context, service="events.amazonaws.com")
        if policy is None or denying_statement(policy, request) or not allowing_statement(policy, request):
            return "the function's resource policy does not allow events.amazonaws.com to invoke it for this rule"
        return ""
    role = target.get("RoleArn")
    if not role:
        return "a Step Functions target needs a RoleArn"
    trust = cloud.authorizer.resource_policy("sts", Need("sts:AssumeRole", role))[0]
    assume = Request("", "sts:AssumeRole", role, context, service="events.amazonaws.com")
    if trust is None or denying_statement(trust, assume) or not allowing_statement(trust, assume):
        return f"the target role {role} does not trust events.amazonaws.com"
    caller = cloud.authorizer.caller_for_role(role)
    if not cloud.authorizer.decide(caller, Need("states:StartExecution", arn)).allowed:
        return f"the target role {role} is not allowed states:StartExecution on {arn}"
    return ""


def _aws_event_shape(event: dict[str, Any], account: str) -> dict[str, Any]:
    shaped = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(shaped.get("time"), int | float):
        shaped["time"] = datetime.fromtimestamp(shaped["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shaped.setdefault("account", account)
    return shaped

"""Workflow resources: EventBridge rules and their targets (`rate(...)` schedules only: services/eventbridge.py
runs them) and Step Functions state machines."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from localcloud.intrinsics import UnsupportedError
from localcloud.resources.cfn_context import Handler, ResourceContext, tags
from localcloud.services.eventbridge import InvalidSchedule, rate_seconds


def rule(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("Name", "EventPattern", "ScheduleExpression", "State", "Description", "EventBusName", "Targets", "Tags")
    events = c.client("events")
    name = p.get("Name") or c.unique_name(64)
    args: dict[str, Any] = {
        "Name": name,
        "State": p.get("State", "ENABLED"),
        "Description": p.get("Description", ""),
    }
    if "EventPattern" in p:
        args["EventPattern"] = json.dumps(p["EventPattern"])
    if "ScheduleExpression" in p:
        # fails loudly on what the local cloud cannot run (cron); PutRule below refuses invalid rates, as AWS does
        with contextlib.suppress(InvalidSchedule):
            rate_seconds(p["ScheduleExpression"])
        args["ScheduleExpression"] = p["ScheduleExpression"]
    if "EventBusName" in p:
        args["EventBusName"] = p["EventBusName"]
    if p.get("Tags"):
        args["Tags"] = tags(p)
    arn = events.put_rule(**args)["RuleArn"]
    targets = []
    for t in p.get("Targets", []):
        unknown = set(t) - {"Id", "Arn", "Input", "InputPath", "RoleArn", "DeadLetterConfig", "RetryPolicy"}
        if unknown:
            raise UnsupportedError(f"AWS::Events::Rule target properties {sorted(unknown)} ({c.logical_id})")
        targets.append(t)
    if targets:
        events.put_targets(Rule=name, EventBusName=p.get("EventBusName", "default"), Targets=targets)
    return name, {"Arn": arn}


def state_machine(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "StateMachineName",
        "DefinitionString",
        "Definition",
        "DefinitionSubstitutions",
        "RoleArn",
        "StateMachineType",
        "LoggingConfiguration",
        "TracingConfiguration",
        "Tags",
    )
    definition = p.get("DefinitionString") or json.dumps(p.get("Definition"))
    for key, value in p.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    name = p.get("StateMachineName") or c.unique_name(80)
    out = c.client("stepfunctions").create_state_machine(
        name=name,
        definition=definition,
        roleArn=p["RoleArn"],
        type=p.get("StateMachineType", "STANDARD"),
        tags=[{"key": t["Key"], "value": t["Value"]} for t in tags(p)],
    )
    return out["stateMachineArn"], {"Arn": out["stateMachineArn"], "Name": name}


HANDLERS: dict[str, Handler] = {
    "AWS::Events::Rule": rule,
    "AWS::StepFunctions::StateMachine": state_machine,
}

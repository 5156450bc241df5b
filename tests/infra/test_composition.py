"""How infra/ is composed: concerns keep their resources' logical ids, named stateless resources never change
logical id, infra names what it shares with the functions through mlvault.wiring only, and loads no runtime code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.concern import ComposedStack, Concern, logical_id
from tests.conftest import ROOT

# Where each type carries a fixed physical name.
NAME_PROPERTY = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SSM::Parameter": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::Rule": "Name",
}


def test_logical_ids_follow_cdks_scheme():
    """logical_id() is CDK's allocation (checked here on CDK's own, for the cases its scheme treats specially)."""
    app = App()
    stack = Stack(app, "S")
    paths = [
        ["Queue"],
        ["Group", "Queue"],
        ["Group", "Default", "Queue"],  # Default: left out entirely
        ["Bucket", "MyBucket"],  # a component the previous one ends with is not repeated in the readable part
        ["My-Group.1", "Queue"],  # non-alphanumeric characters are dropped
        ["X" * 130, "Y" * 130, "Queue"],  # the readable part is cut at 240 characters
    ]
    expected = {}
    for path in paths:
        scope: Construct = stack
        for component in path[:-1]:
            scope = scope.node.try_find_child(component) or Construct(scope, component)
        queue = sqs.Queue(scope, path[-1])
        expected[stack.get_logical_id(queue.node.default_child)] = [*path, "Resource"]
    for cdk_id, path in expected.items():
        assert logical_id(path) == cdk_id, path


def test_a_concern_keeps_the_logical_ids_of_its_resources():
    class Alerting(Concern):
        def __init__(self, scope: Construct, construct_id: str) -> None:
            super().__init__(scope, construct_id)
            self.topic = sns.Topic(self, "Alerts")
            self.queue = sqs.Queue(Construct(self, "Inner"), "Queue")

    app = App()
    plain, composed = Stack(app, "Plain"), ComposedStack(app, "Composed")
    sns.Topic(plain, "Alerts")
    sqs.Queue(Construct(plain, "Inner"), "Queue")
    Alerting(composed, "Alerting")
    assembly = app.synth()
    ids = {name: set(assembly.get_stack_by_name(name).template["Resources"]) for name in ("Plain", "Composed")}
    assert ids["Composed"] == ids["Plain"]


def test_ids_inside_concerns_must_be_unique_in_their_stack():
    app = App()
    stack = ComposedStack(app, "S")
    sqs.Queue(Concern(stack, "A"), "Queue")
    sqs.Queue(Concern(stack, "B"), "Queue")
    with pytest.raises(RuntimeError, match="already contains"):
        app.synth()


@pytest.mark.parametrize("suffix", ["-ingest", "-models"])
def test_named_stateless_resources_never_change_logical_id(synthesized, suffix):
    """CloudFormation replaces a resource whose logical id changed by creating the new one first: with a fixed
    name (log groups, alarms, the dashboard, the state machine, producer roles, SSM parameters) that fails, or for
    alarms and dashboards the old resource's deletion removes the new one's name."""
    pinned = json.loads((Path(__file__).parent / "named_logical_ids.json").read_text())[suffix]
    template = synthesized.template(suffix)
    named = {
        k: r["Type"]
        for k, r in template["Resources"].items()
        if NAME_PROPERTY.get(r["Type"]) in r.get("Properties", {})
    }
    missing = {k: t for k, t in pinned.items() if named.get(k) != t}
    assert not missing, f"named resources changed logical id (or were removed): {missing}"


def _infra_sources() -> dict[Path, str]:
    return {p: p.read_text() for p in [ROOT / "app.py", *(ROOT / "infra").rglob("*.py")]}


def test_infra_spells_no_name_it_shares_with_the_functions():
    """Environment variables, metrics, event sources and detail types, tags, bundle paths, the serving alias and
    the parameter prefix come from mlvault.wiring, never as literals. (Left out as too common to search for: the
    namespace "mlvault", which is also the library's name, and the dimension names: "Status" is also a
    CloudFormation property the policy rules read.)"""
    from mlvault import wiring

    shared = {
        value
        for holder in (wiring.Env, wiring.Metric, wiring.Source, wiring.DetailType, wiring.Tag)
        for name, value in vars(holder).items()
        if name.isupper() and isinstance(value, str)
    }
    shared |= {wiring.SERVE_ALIAS, wiring.Bundle.TRUST_FILE, wiring.Bundle.ANCHORS, wiring.parameter_prefix("dev")}
    # the anchors document's distinctive keys (its other keys, "stage", "arn", "alarms"..., are plain words)
    shared |= {wiring.Anchor.MODEL_SIGNING_KEY, wiring.Anchor.PUBLIC_KEY_SHA256}
    shared -= {wiring.Tag.VERDICT_RECORDED}  # "recorded" is a plain word; the tag key is checked
    found = [
        f"{path.relative_to(ROOT)}: {value!r}"
        for path, text in _infra_sources().items()
        for value in shared
        if re.search(rf"""(["']){re.escape(value)}\1""", text)
    ]
    assert not found, found


def test_infra_loads_no_runtime_code():
    """infra imports mlvault.wiring and pure library modules only: nothing that brings boto3 in."""
    probe = "import sys, infra.assembly; print(sorted(m for m in ('boto3', 'pyarrow') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"

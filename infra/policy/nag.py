"""cdk-nag 3.x: the rule packs every synth runs, and the one way to acknowledge a finding next to its
resource."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct

PACKS = ("AwsSolutions", "NIST.800.53.R5")


def register_packs(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    Validations.of(app).add_plugins(NIST80053R5Checks(app))


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on a construct, with the reason it is acceptable there.

    `rule_id` is the finding as cdk-nag prints it, e.g. `AwsSolutions-S1` or the granular
    `AwsSolutions-IAM5[Action::s3:GetObject*]`; the pack prefix cdk-nag 3 expects is added here.
    """
    pack = next((p for p in PACKS if rule_id.startswith(f"{p}-")), None)
    if pack is None:
        raise ValueError(f"unknown cdk-nag rule id {rule_id!r}; expected a prefix in {PACKS}")
    if len(reason) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a real reason, got {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{pack}::{rule_id}", reason=reason))

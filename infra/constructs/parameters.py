"""Service discovery: each stack publishes the names the CLI needs as SSM parameters under the stage's parameter
prefix (mlvault.wiring), so that `mlvault` finds buckets and tables the same way on AWS and on the local cloud."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.settings import StageSettings
from mlvault.wiring import parameter_prefix


def publish(scope: Construct, settings: StageSettings, values: dict[str, str]) -> None:
    for name, value in values.items():
        construct_id = "Discovery" + "".join(part.title() for part in name.replace("/", "-").split("-"))
        ssm.StringParameter(
            scope,
            construct_id,
            parameter_name=f"{parameter_prefix(settings.stage)}{name}",
            string_value=value,
            description=f"mlvault {settings.stage}: {name}",
        )

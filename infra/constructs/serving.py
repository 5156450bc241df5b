"""The serving function: serves predictions of the model pinned to its version, after verifying the model's digest,
signature and registry status; callers invoke it through its alias, which deployments and rollbacks move."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.constructs.model_resources import ModelResources
from infra.constructs.trust_anchors import TrustAnchors
from infra.policy.nag import acknowledge
from mlvault.wiring import SERVE_ALIAS, Env


class Serving(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        models: ModelResources,
        anchors: TrustAnchors,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = fn = SecureFunction(
            self,
            "Serve",
            platform=platform,
            name="serve",
            description="Serves predictions of the pinned model, after verifying its digest and signature",
            environment={
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.DRIFT_WINDOW_ROWS: str(platform.settings.drift_alarm.window_rows),
            },
            anchors=anchors,
        )
        models.allow_verification(fn, "reads the pinned model and signature")
        fn.allow(["dynamodb:GetItem"], [models.registry.table_arn])
        fn.allow_data_key()

    @property
    def environment(self) -> dict[str, str]:
        """How the functions that move the alias (deploy, rollback) name the serving function and its alias."""
        return {Env.SERVE_FUNCTION: self.function.function.function_name, Env.SERVE_ALIAS: SERVE_ALIAS}

    def allow_routing(self, fn: SecureFunction, actions: list[str], reason: str) -> None:
        """Lambda actions on the serving function and its versions and alias (qualified ARNs) only."""
        arn = self.function.function.function_arn
        fn.allow(actions, [arn, f"{arn}:*"])
        logical_id = Stack.of(self).get_logical_id(self.function.function.node.default_child)
        acknowledge(fn.role, f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]", reason)

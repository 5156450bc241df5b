"""One model's serving function: serves predictions of the model pinned to its version, after verifying the model's
digest, signature and registry status; callers reach it through its `live` alias, which deployments and rollbacks
move, directly (lambda:InvokeFunction on the alias) or through the alias's function URL.

The function URL is `AWS_IAM`: a caller needs `lambda:InvokeFunctionUrl` on the alias in an identity policy of
its own account (mlvault grants it to no one; README, "Bring your own model", shows the caller role to create). The
URL belongs to the alias, so a canary's routing weights split URL traffic as they split direct invocations.

The alias exists from the first deployment of the stack, pointing at the function's first version: published
without a model pinned, it refuses every request (the pins are set by the deploy step, in the versions it
publishes). The template never changes the alias again (CloudFormation would move it back): the deploy and
rollback steps own where it points.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.constructs.model_facts import served_model_bundle, served_model_document
from infra.constructs.model_resources import ModelResources
from infra.constructs.trust_anchors import TrustAnchors
from infra.model_settings import ModelSettings
from infra.policy.nag import acknowledge
from mlvault.wiring import SERVE_ALIAS, Env

# Lambda's invocations of the model through the URL are BUFFERED (one JSON answer per request).
URL_AUTH = lambda_.FunctionUrlAuthType.AWS_IAM


class Serving(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        model: ModelSettings,
        models: ModelResources,
        anchors: TrustAnchors,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = platform.settings
        self.model = model
        # the model's own construct: its name leads the logical ids of its resources (IrisServeFunction...)
        own = Construct(self, model.scope_id)
        self.function = fn = SecureFunction(
            own,
            "Serve",
            platform=platform,
            name="serve",
            instance=model.name,
            description=f"Serves model {model.name}'s pinned version, after verifying its digest and signature",
            environment={
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.DRIFT_WINDOW_ROWS: str(settings.drift_alarm.window_rows),
            },
            with_onnx=True,
            anchors=anchors,
            bundle=served_model_bundle(served_model_document(settings, model)),
        )
        models.allow_verification(fn, "reads the pinned model and signature")
        fn.allow(["dynamodb:GetItem"], [models.registry.table_arn])
        fn.allow_data_key()
        unpinned = lambda_.Version(
            own,
            "Unpinned",
            lambda_=fn.function,
            description=f"model {model.name}: no model pinned (refuses every request until the first deployment)",
        )
        self.alias = lambda_.Alias(own, "Live", alias_name=SERVE_ALIAS, version=unpinned)
        self.url = self.alias.add_function_url(auth_type=URL_AUTH)

    @property
    def function_name(self) -> str:
        return self.function.function.function_name

    def allow_routing(self, fn: SecureFunction, actions: list[str], reason: str) -> None:
        """Lambda actions on this serving function and its versions and alias (qualified ARNs) only."""
        arn = self.function.function.function_arn
        fn.allow(actions, [arn, f"{arn}:*"])
        logical_id = Stack.of(self).get_logical_id(self.function.function.node.default_child)
        acknowledge(fn.role, f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]", reason)

"""Key revocation (`mlvault producers revoke`): a function of its own, so that the permission to invoke it (to
revoke a producer key) is not the permission to roll serving back at will. It records the revocation with the
caller's identity, marks the accepted files the key signed from the effective time on, revokes the models trained
on them (of every model of the stage: where each is served comes from its bundled serving facts) and rolls back a
live one only if it revoked it; its report is announced through the registry's outbox. The keys it may revoke are
those of the stage's trust registry, bundled with its signed code as with the verifier's (Bundle.TRUST_FILE, the
reviewed trustFile): a key id in no producer entry is refused before anything is recorded."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.constructs.model_resources import ModelResources
from infra.constructs.serving import Serving
from infra.constructs.trust_anchors import TrustAnchors
from infra.settings import ROOT
from mlvault.wiring import Bundle, Env

# The ledger: the revocation record (PutItem, conditional; GetItem), the accepted files the key signed (Scan),
# their taint (UpdateItem).
LEDGER_ACTIONS = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"]


class Revocation(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        models: ModelResources,
        serving: list[Serving],
        alerts: sns.ITopic,
        anchors: TrustAnchors,
        serving_bundle: dict,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = fn = SecureFunction(
            self,
            "Revoke",
            platform=platform,
            name="revoke",
            description="Revokes a producer key: taints its data, revokes models trained on it, rolls back a live one",
            environment={
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.LEDGER_TABLE: models.ledger.table_name,
                Env.ALERT_TOPIC_ARN: alerts.topic_arn,
            },
            timeout=Duration.minutes(5),
            extra_files={Bundle.TRUST_FILE: ROOT / platform.settings.trust_file},
            anchors=anchors,
            bundle=serving_bundle,
        )
        for each in serving:
            each.allow_routing(
                fn,
                ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetFunctionConfiguration"],
                "A revocation reads the serving functions' versions and moves an alias off a model it revoked.",
            )
        models.allow_verification(fn, "re-verifies the rollback target")
        models.allow_registry(fn)
        fn.allow(LEDGER_ACTIONS, [models.ledger.table_arn])
        fn.allow(["sns:Publish"], [alerts.topic_arn])
        fn.allow_events()
        fn.allow_data_key()

"""The stateless model stack: the serving function and its alarms, the model pipeline (train -> evaluate ->
register -> sign -> deploy in canary steps) and what starts it, the automated rollback and the dashboard."""

from __future__ import annotations

from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import ComposedStack
from infra.constructs.dashboard import OverviewDashboard
from infra.constructs.functions import FunctionPlatform
from infra.constructs.key_revocation import Revocation
from infra.constructs.model_pipeline import ModelPipeline
from infra.constructs.model_resources import ModelResources
from infra.constructs.parameters import publish
from infra.constructs.pipeline_trigger import PipelineTrigger
from infra.constructs.rollback import AutomatedRollback
from infra.constructs.serving import Serving
from infra.constructs.serving_alarms import CHECKED_BY_CANARY, ROLLING_BACK, ServingAlarms, alarm_names
from infra.constructs.trust_anchors import TrustAnchors
from infra.settings import StageSettings
from infra.stacks.signing_stack import SigningStack
from infra.stacks.storage_stack import StorageStack
from mlvault.wiring import SERVE_ALIAS


class ModelsStack(ComposedStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        storage: StorageStack,
        signing: SigningStack,
        alerts: sns.ITopic,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform = FunctionPlatform(
            self, "Platform", settings=settings, data_key=storage.data_key, signing=signing.provider(self)
        )
        # Whom the model functions trust, signed into their code: the model-signing key and mlvault's own alarms.
        names = alarm_names(settings)
        self.anchors = anchors = TrustAnchors(
            stage=settings.stage,
            model_signing_key=storage.signing_key,
            rollback_alarms=tuple(names[r] for r in ROLLING_BACK),
            canary_alarms=tuple(names[r] for r in CHECKED_BY_CANARY),
        )
        models = ModelResources.of(
            self,
            settings=settings,
            registry=storage.registry_table,
            ledger=storage.ledger_table,
            signing_key=storage.signing_key,
        )
        serving = Serving(self, "Serving", platform=self.platform, models=models, anchors=anchors)
        alarms = ServingAlarms(self, "ServingAlarms", settings=settings, serve=serving.function.function, alerts=alerts)
        pipeline = ModelPipeline(
            self,
            "ModelPipeline",
            platform=self.platform,
            models=models,
            serving=serving,
            alarms=alarms,
            anchors=anchors,
            alerts=alerts,
        )
        trigger = PipelineTrigger(self, "PipelineTrigger", platform=self.platform, state_machine=pipeline.state_machine)
        rollback = AutomatedRollback(
            self,
            "AutomatedRollback",
            platform=self.platform,
            models=models,
            serving=serving,
            alarms=alarms,
            alerts=alerts,
            anchors=anchors,
        )
        revocation = Revocation(  # its own function: permission to revoke is not permission to roll back
            self,
            "Revocation",
            platform=self.platform,
            models=models,
            serving=serving,
            alerts=alerts,
            anchors=anchors,
        )
        OverviewDashboard(self, "OverviewDashboard", settings=settings, alarms=alarms)

        self.serve = serving.function
        self.pipeline, self.sign, self.deploy = pipeline.pipeline, pipeline.sign, pipeline.deploy
        self.state_machine = pipeline.state_machine
        self.trigger = trigger.function
        self.rollback = rollback.function
        self.revoke = revocation.function
        publish(
            self,
            settings,
            {
                "rollback-function": self.rollback.function.function_name,
                "revoke-function": self.revoke.function.function_name,
                "model-pipeline": self.state_machine.state_machine_arn,
                "serve-function": self.serve.function.function_name,
                "serve-alias": SERVE_ALIAS,
                "model-signing-key": storage.signing_key.key_arn,
            },
        )

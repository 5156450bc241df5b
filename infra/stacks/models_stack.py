"""The stateless model stack: for each model of the stage (cdk.json `models`) its serving function (alias `live`,
function URL), its alarms and its pipeline state machine (a SageMaker training job for the sagemaker engine); the
functions every model shares (pipeline, sign, deploy), what starts the pipelines, the automated rollback, key
revocation and the dashboard."""

from __future__ import annotations

from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import ComposedStack
from infra.constructs.dashboard import OverviewDashboard
from infra.constructs.functions import FunctionPlatform
from infra.constructs.key_revocation import Revocation
from infra.constructs.model_facts import (
    CodeAsset,
    ServingTarget,
    models_bundle,
    models_document,
    serving_bundle,
    serving_document,
)
from infra.constructs.model_pipeline import ModelPipeline
from infra.constructs.model_resources import ModelResources
from infra.constructs.model_source import ModelSource, model_source
from infra.constructs.parameters import publish
from infra.constructs.pipeline_definition import ModelStateMachine, state_machine_name
from infra.constructs.pipeline_trigger import PipelineTrigger
from infra.constructs.rollback import AutomatedRollback
from infra.constructs.serving import Serving
from infra.constructs.serving_alarms import ServingAlarms, alarm_names
from infra.constructs.trust_anchors import TrustAnchors
from infra.model_settings import ENGINE_SAGEMAKER
from infra.settings import StageSettings
from infra.stacks.signing_stack import SigningStack
from infra.stacks.storage_stack import StorageStack
from mlvault.wiring import (
    SERVE_ALIAS,
    function_url_parameter,
    model_dataset_parameter,
    model_pipeline_parameter,
    serve_function_parameter,
)


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
        self.platform = platform = FunctionPlatform(
            self, "Platform", settings=settings, data_key=storage.data_key, signing=signing.provider(self)
        )
        # Whom the model functions trust, signed into their code: the model-signing key and every model's alarms.
        names = {m.name: alarm_names(settings, m.name) for m in settings.models}
        self.anchors = anchors = TrustAnchors(
            stage=settings.stage,
            model_signing_key=storage.signing_key,
            rollback_alarms=tuple(n[r] for n in names.values() for r in ("errors", "drift")),
            canary_alarms=tuple(n[r] for n in names.values() for r in ("errors", "refused", "drift")),
        )
        models = ModelResources.of(
            self,
            settings=settings,
            registry=storage.registry_table,
            ledger=storage.ledger_table,
            signing_key=storage.signing_key,
        )
        self.serving: dict[str, Serving] = {}
        self.alarms: dict[str, ServingAlarms] = {}
        self.sources: dict[str, ModelSource] = {}
        for model in settings.models:
            serving = Serving(
                self, f"Serving{model.scope_id}", platform=platform, model=model, models=models, anchors=anchors
            )
            self.serving[model.name] = serving
            self.alarms[model.name] = ServingAlarms(
                self,
                f"ServingAlarms{model.scope_id}",
                settings=settings,
                model=model,
                serve=serving.function.function,
                alerts=alerts,
            )
            if model.engine == ENGINE_SAGEMAKER:
                assert model.job is not None
                self.sources[model.name] = model_source(
                    serving.node.find_child(model.scope_id),
                    "Source",
                    name=model.name,
                    source_dir=model.job.source_dir,
                )
        # Each model's facts, bundled into the signed code of the functions that act on them (model_facts.py).
        code = {n: CodeAsset(bucket=s.bucket, key=s.key, sha256=s.sha256) for n, s in self.sources.items()}
        self.models_document = models_document(settings, code)
        self.serving_document = serving_document(
            settings,
            {
                n: ServingTarget(
                    function_name=s.function_name,
                    rollback_alarms=self.alarms[n].rollback_names,
                    canary_alarms=self.alarms[n].canary_names,
                )
                for n, s in self.serving.items()
            },
        )
        serving, alarms = list(self.serving.values()), list(self.alarms.values())
        serving_facts = serving_bundle(self.serving_document)  # deploy, rollback and revoke each bundle it
        pipeline = ModelPipeline(
            self,
            "ModelPipeline",
            platform=platform,
            models=models,
            serving=serving,
            alarms=alarms,
            anchors=anchors,
            models_bundle=models_bundle(self.models_document),
            serving_bundle=serving_facts,
            sources=list(self.sources.values()),
            state_machine_names=[state_machine_name(settings.prefix, m.name) for m in settings.models],
            alerts=alerts,
        )
        self.pipelines: dict[str, ModelStateMachine] = {
            model.name: ModelStateMachine(
                self,
                f"Pipeline{model.scope_id}",
                platform=platform,
                model=model,
                functions=pipeline,
                models=models,
                source=self.sources.get(model.name),
            )
            for model in settings.models
        }
        trigger = PipelineTrigger(
            self,
            "PipelineTrigger",
            platform=platform,
            pipelines={n: p.state_machine for n, p in self.pipelines.items()},
        )
        rollback = AutomatedRollback(
            self,
            "AutomatedRollback",
            platform=platform,
            models=models,
            serving=serving,
            alarms=alarms,
            alerts=alerts,
            anchors=anchors,
            serving_bundle=serving_facts,
        )
        revocation = Revocation(  # its own function: permission to revoke is not permission to roll back
            self,
            "Revocation",
            platform=platform,
            models=models,
            serving=serving,
            alerts=alerts,
            anchors=anchors,
            serving_bundle=serving_facts,
        )
        OverviewDashboard(self, "OverviewDashboard", settings=settings, alarms=alarms)

        self.pipeline, self.sign, self.deploy = pipeline.pipeline, pipeline.sign, pipeline.deploy
        self.trigger = trigger.function
        self.rollback = rollback.function
        self.revoke = revocation.function
        discovery = {
            "rollback-function": self.rollback.function.function_name,
            "revoke-function": self.revoke.function.function_name,
            "serve-alias": SERVE_ALIAS,
            "model-signing-key": storage.signing_key.key_arn,
        }
        for model in settings.models:  # per model: the CLI's `--model NAME` (mlvault_tools.cli.base)
            discovery[serve_function_parameter(model.name)] = self.serving[model.name].function_name
            discovery[function_url_parameter(model.name)] = self.serving[model.name].url.url
            discovery[model_pipeline_parameter(model.name)] = self.pipelines[model.name].state_machine.state_machine_arn
            discovery[model_dataset_parameter(model.name)] = model.dataset
        publish(self, settings, discovery)

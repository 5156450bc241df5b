"""The shared functions of every model's pipeline (infra/constructs/pipeline_definition.py builds each model's state
machine over them): pipeline (train, prepare, collect, evaluate, register, the end of a failed run), sign and deploy.

What they must know of each model, and whom they trust, is bundled into their signed code (the trust anchors and the
model facts, infra/constructs/model_facts.py); their environment names resources only.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import ONE_VCPU_MB, FunctionPlatform, SecureFunction, contract_files
from infra.constructs.model_resources import ModelResources
from infra.constructs.model_source import ModelSource
from infra.constructs.serving import Serving
from infra.constructs.serving_alarms import ServingAlarms
from infra.constructs.trust_anchors import TrustAnchors
from infra.policy.nag import acknowledge
from infra.policy.spec import GRANT_FOR_AWS_RESOURCE_CONDITION_KEY, BucketRole
from mlvault.wiring import Bundle, Env

PIPELINE_EPHEMERAL_MIB = 2048

DEPLOY_ACTIONS = [
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:GetAlias",
    "lambda:CreateAlias",
    "lambda:UpdateAlias",
]


class ModelPipeline(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        models: ModelResources,
        serving: list[Serving],
        alarms: list[ServingAlarms],
        anchors: TrustAnchors,
        models_bundle: dict,
        serving_bundle: dict,
        sources: list[ModelSource],
        state_machine_names: list[str],
        alerts: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        # The model-signing key, the alarms to check and each model's facts are not configuration: they are bundled.
        self.anchors = anchors
        self.alerts = alerts
        self.settings = platform.settings
        steps = {
            Env.MODEL_BUCKET: models.model_bucket,
            Env.LEDGER_TABLE: models.ledger.table_name,
            Env.REGISTRY_TABLE: models.registry.table_name,
            Env.CONTRACTS_DIR: Bundle.CONTRACTS_DIR,
            Env.ALERT_TOPIC_ARN: alerts.topic_arn,  # a refused signing key is announced
        }
        self.pipeline = self._pipeline_function(platform, models, steps, models_bundle, sources)
        self.sign = self._sign_function(platform, models, steps, models_bundle)
        self.deploy = self._deploy_function(platform, models, serving, alarms, serving_bundle, state_machine_names)
        for fn in (self.pipeline, self.sign, self.deploy):
            fn.allow(["sns:Publish"], [alerts.topic_arn])
        for fn in (self.sign, self.deploy):  # a refused signing key: a `Model Pipeline Blocked` event too
            fn.allow_events()

    def acknowledge_invoker(self, role: iam.IRole) -> None:
        """What a model's state machine role holds: the invocation of these functions (qualified or not)."""
        stack = Stack.of(self)
        for fn in (self.pipeline, self.sign, self.deploy):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.function.node.default_child)}.Arn>:*]",
                "The state machine invokes the pipeline's own functions, qualified or not (CDK's grant).",
            )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray segments and log delivery (CreateLogDelivery & co.) have no resource-level scoping; nor has "
            "sagemaker:ListTags, which a training job's `.sync` integration calls.",
        )
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "The policy is attached to the state machine's own role only, generated from its tasks.",
        )

    def _pipeline_function(
        self,
        platform: FunctionPlatform,
        models: ModelResources,
        environment: dict[str, str],
        models_bundle: dict,
        sources: list[ModelSource],
    ) -> SecureFunction:
        fn = SecureFunction(
            self,
            "Pipeline",
            platform=platform,
            name="pipeline",
            description="Model pipeline steps: train or prepare, run and collect a training job, evaluate, register",
            environment=environment,
            timeout=Duration.minutes(15),
            memory_size=ONE_VCPU_MB,
            # collect keeps a training job's model.tar.gz and the package it unpacks (each up to
            # mlvault.model_package.MAX_PACKAGE_BYTES, 512 MiB) in /tmp at once: 512 MiB is Lambda's default
            ephemeral_storage_mib=PIPELINE_EPHEMERAL_MIB,
            with_arrow=True,
            with_onnx=True,
            with_onnx_graph=True,  # the built-in trainer writes its model's graph with onnx.helper
            extra_files=contract_files(),
            anchors=self.anchors,
            bundle=models_bundle,
        )
        fn.allow(["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:Query"], [models.ledger.table_arn])
        fn.allow_objects(
            ["s3:GetObject", "s3:GetObjectVersion"],
            BucketRole.LAKE,
            {
                "/datasets/*": "Training reads the exact lake versions its manifest pins; their keys are "
                "content-addressed."
            },
        )
        models.allow_objects(
            fn,
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            ["manifests", "models", "channels", "heldout"],
            "stores manifests, model packages, training jobs' channels and the held-out splits it keeps",
        )
        if sources:  # collect reads what the training jobs wrote; prepare re-hashes and copies their code
            models.allow_objects(fn, ["s3:GetObject", "s3:GetObjectVersion"], ["jobs"], "collects training jobs")
            for source in sources:
                source.allow_reading(fn.role)
        models.allow_registry(fn)
        fn.allow_data_key()
        return fn

    def _sign_function(
        self, platform: FunctionPlatform, models: ModelResources, environment: dict[str, str], models_bundle: dict
    ) -> SecureFunction:
        fn = SecureFunction(
            self,
            "Sign",
            platform=platform,
            name="sign",
            description="Signs a registered model with the KMS model signing key (OpenSSF model-signing format)",
            environment=environment,
            timeout=Duration.minutes(2),
            anchors=self.anchors,
            bundle=models_bundle,
        )
        why = "reads artifacts, writes signatures"
        fn.allow(["kms:Sign", "kms:GetPublicKey"], [models.signing_key.key_arn])
        models.allow_objects(fn, ["s3:GetObject", "s3:GetObjectVersion"], ["models"], why)
        models.allow_objects(fn, ["s3:PutObject"], ["signatures"], why)
        models.allow_registry(fn)
        fn.allow_data_key()
        return fn

    def _deploy_function(
        self,
        platform: FunctionPlatform,
        models: ModelResources,
        serving: list[Serving],
        alarms: list[ServingAlarms],
        serving_bundle: dict,
        state_machine_names: list[str],
    ) -> SecureFunction:
        settings = platform.settings
        fn = SecureFunction(
            self,
            "Deploy",
            platform=platform,
            name="deploy",
            description="Verifies a signed model, pins it to its serving version and promotes it in canary steps",
            environment={
                Env.CANARY_STEPS: settings.canary_steps_json,
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.ALERT_TOPIC_ARN: self.alerts.topic_arn,
            },
            timeout=Duration.minutes(2),
            anchors=self.anchors,
            bundle=serving_bundle,
        )
        for each in serving:
            each.allow_routing(
                fn,
                DEPLOY_ACTIONS,
                "Deployments publish and route versions of the models' serving functions only (their qualified ARNs).",
            )
        for each in alarms:
            each.allow_reading(fn)
        stack = Stack.of(self)
        for name in state_machine_names:
            executions = f"execution:{name}:*"
            fn.allow(
                ["states:DescribeExecution"],
                [f"arn:{stack.partition}:states:{stack.region}:{stack.account}:{executions}"],
            )
            acknowledge(
                fn.role,
                f"AwsSolutions-IAM5[Resource::arn:aws:states:{settings.region}:<AWS::AccountId>:{executions}]",
                "The deploy step checks whether the execution holding a model's deployment lock still runs (a "
                "stopped one never released it); executions are named per run.",
            )
        models.allow_verification(fn, "re-verifies the artifact and signature")
        models.allow_registry(fn)
        fn.allow_data_key()
        # Publishing a serving version with its pins sets the serving function's environment, which is encrypted
        # with the data key: Lambda encrypts it and grants the function's role its use, on the caller's behalf.
        fn.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[platform.data_key.key_arn],
                conditions={"Bool": {GRANT_FOR_AWS_RESOURCE_CONDITION_KEY: "true"}},
            )
        )
        return fn

"""The model pipeline: a state machine that trains on a manifest of accepted lake versions, evaluates the gates,
registers, signs and deploys the model in canary steps (rolled back on any serving alarm), and its functions:
pipeline (train, evaluate, register), sign and deploy."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import ONE_VCPU_MB, FunctionPlatform, SecureFunction, contract_files
from infra.constructs.model_resources import ModelResources
from infra.constructs.serving import Serving
from infra.constructs.serving_alarms import ServingAlarms
from infra.constructs.trust_anchors import TrustAnchors
from infra.policy.nag import acknowledge
from infra.policy.spec import GRANT_FOR_AWS_RESOURCE_CONDITION_KEY, BucketRole
from mlvault.wiring import Bundle, Env

TIMEOUT = Duration.hours(6)
APPROVAL_TIMEOUT = Duration.days(7)
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
        serving: Serving,
        alarms: ServingAlarms,
        anchors: TrustAnchors,
        alerts: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = platform.settings
        # The model-signing key and the alarms to check are not configuration: they are the bundled anchors.
        self.anchors = anchors
        self.alerts = alerts
        self.state_machine_name = f"{settings.prefix}-model-pipeline"
        steps = {
            Env.MODEL_BUCKET: models.model_bucket,
            Env.LEDGER_TABLE: models.ledger.table_name,
            Env.REGISTRY_TABLE: models.registry.table_name,
            Env.CONTRACTS_DIR: Bundle.CONTRACTS_DIR,
            Env.MODEL_GATES: settings.model_gates_json,
            Env.TRAINING_PARAMS: settings.training_json,
            Env.ALERT_TOPIC_ARN: alerts.topic_arn,  # a refused signing key is announced
        }
        self.pipeline = self._pipeline_function(platform, models, steps)
        self.sign = self._sign_function(platform, models, steps)
        self.deploy = self._deploy_function(platform, models, serving, alarms)
        for fn in (self.pipeline, self.sign, self.deploy):
            fn.allow(["sns:Publish"], [alerts.topic_arn])
        for fn in (self.sign, self.deploy):  # a refused signing key: a `Model Pipeline Blocked` event too
            fn.allow_events()

        self.state_machine = sfn.StateMachine(
            self,
            "ModelPipeline",
            state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(
                self._definition(manual_approval=settings.manual_approval)
            ),
            timeout=TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=platform.log_group(self, "PipelineLogs", name="states/pipeline"),
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
        )
        stack = Stack.of(self)
        for fn in (self.pipeline, self.sign, self.deploy):
            acknowledge(
                self.state_machine.role,
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.function.node.default_child)}.Arn>:*]",
                "The state machine invokes its own functions, qualified or not (CDK's grant).",
            )
        acknowledge(
            self.state_machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray segments and log delivery (CreateLogDelivery & co.) have no resource-level scoping.",
        )
        acknowledge(
            self.state_machine.role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "The policy is attached to the state machine's own role only, generated from its tasks.",
        )

    def _pipeline_function(
        self, platform: FunctionPlatform, models: ModelResources, environment: dict[str, str]
    ) -> SecureFunction:
        fn = SecureFunction(
            self,
            "Pipeline",
            platform=platform,
            name="pipeline",
            description="Model pipeline steps: train (from a stored manifest), evaluate (gates), register",
            environment=environment,
            timeout=Duration.minutes(15),
            memory_size=ONE_VCPU_MB,
            with_arrow=True,
            extra_files=contract_files(),
            anchors=self.anchors,
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
            ["manifests", "models"],
            "stores manifests and artifacts",
        )
        models.allow_registry(fn)
        fn.allow_data_key()
        return fn

    def _sign_function(
        self, platform: FunctionPlatform, models: ModelResources, environment: dict[str, str]
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
        )
        why = "reads artifacts, writes signatures"
        fn.allow(["kms:Sign", "kms:GetPublicKey"], [models.signing_key.key_arn])
        models.allow_objects(fn, ["s3:GetObject", "s3:GetObjectVersion"], ["models"], why)
        models.allow_objects(fn, ["s3:PutObject"], ["signatures"], why)
        models.allow_registry(fn)
        fn.allow_data_key()
        return fn

    def _deploy_function(
        self, platform: FunctionPlatform, models: ModelResources, serving: Serving, alarms: ServingAlarms
    ) -> SecureFunction:
        settings = platform.settings
        fn = SecureFunction(
            self,
            "Deploy",
            platform=platform,
            name="deploy",
            description="Verifies a signed model, pins it to a serving version and promotes it in canary steps",
            environment={
                **serving.environment,
                Env.CANARY_STEPS: settings.canary_steps_json,
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.ALERT_TOPIC_ARN: self.alerts.topic_arn,
            },
            timeout=Duration.minutes(2),
            anchors=self.anchors,
        )
        serving.allow_routing(
            fn,
            DEPLOY_ACTIONS,
            "Deployments publish and route versions of the serving function only (its qualified ARNs).",
        )
        alarms.allow_reading(fn)
        stack = Stack.of(self)
        executions = f"execution:{self.state_machine_name}:*"
        fn.allow(
            ["states:DescribeExecution"], [f"arn:{stack.partition}:states:{stack.region}:{stack.account}:{executions}"]
        )
        acknowledge(
            fn.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:states:{settings.region}:<AWS::AccountId>:{executions}]",
            "The deploy step checks whether the execution holding the deployment lock still runs (a stopped one "
            "never released it); executions are named per run.",
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

    def _definition(self, *, manual_approval: bool) -> sfn.IChainable:
        """debounce -> train -> evaluate -> register -> sign [-> approval] -> prepare -> (advance -> bake -> check
        alarms)* -> promote; an alarm or a failed step during the rollout rolls back. Any other failed step ends
        its run (RecordFailure: the run record names the step and the reason) before the execution fails with the
        step's own error."""

        def step(fn: SecureFunction, name: str, payload: dict, result_path: str = "$.state") -> tasks.LambdaInvoke:
            return tasks.LambdaInvoke(
                self,
                name,
                lambda_function=fn.function,
                payload=sfn.TaskInput.from_object(payload),
                payload_response_only=True,
                result_path=result_path,
                retry_on_service_exceptions=True,
            )

        state = {"state.$": "$.state"}
        execution = {"execution.$": "$$.Execution.Id"}  # the execution ARN: owns the deployment lock
        debounce = sfn.Wait(self, "Debounce", time=sfn.WaitTime.seconds_path("$.debounce_seconds"))
        train = step(
            self.pipeline,
            "Train",
            {"step": "train", "state": {"dataset.$": "$.dataset", "run_id.$": "$$.Execution.Name"}},
        )
        evaluate = step(self.pipeline, "Evaluate", {"step": "evaluate", **state})
        register = step(self.pipeline, "Register", {"step": "register", **state})
        sign = step(self.sign, "SignModel", state)
        prepare = step(self.deploy, "Prepare", {"action": "prepare", **state, **execution})
        prepare.add_retry(errors=["DeploymentLocked"], interval=Duration.seconds(2), max_attempts=5, backoff_rate=2)
        advance = step(self.deploy, "Advance", {"action": "advance", **state, **execution})
        check = step(self.deploy, "CheckAlarms", {"action": "check", **state, **execution})
        promote = step(self.deploy, "Promote", {"action": "promote", **state, **execution})
        rollback = step(self.deploy, "Rollback", {"action": "rollback", **state, **execution})
        bake = sfn.Wait(self, "Bake", time=sfn.WaitTime.seconds_path("$.state.rollout.wait_seconds"))
        rolled_back = sfn.Fail(self, "RolledBack", error="RolledBack", cause="a serving alarm fired during the canary")
        for task in (advance, check, promote):  # the error travels with the state: the rollback records it
            task.add_catch(rollback, errors=["States.ALL"], result_path="$.state.error")
        rollback.next(rolled_back)
        run_failed = sfn.Fail(self, "RunFailed", error_path="$.error.Error", cause_path="$.error.Cause")
        record_failure = step(
            self.pipeline,
            "RecordFailure",
            {
                "step": "fail",
                "state": {"dataset.$": "$.dataset", "run_id.$": "$$.Execution.Name"},
                "failed_step.$": "$.failed_step",
                "error.$": "$.error",
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        record_failure.add_catch(run_failed, errors=["States.ALL"], result_path="$.record_error")
        record_failure.next(run_failed)

        def ends_the_run(task: sfn.TaskStateBase, name: str) -> None:
            mark = sfn.Pass(
                self, f"{task.node.id}Failed", result=sfn.Result.from_string(name), result_path="$.failed_step"
            )
            task.add_catch(mark, errors=["States.ALL"], result_path="$.error")
            mark.next(record_failure)

        for task, name in ((train, "train"), (evaluate, "evaluate"), (register, "register"), (sign, "sign")):
            ends_the_run(task, name)
        ends_the_run(prepare, "deploy")
        ends_the_run(rollback, "rollback")
        alarm = sfn.Choice(self, "AlarmFired?")
        alarm.when(sfn.Condition.is_not_null("$.state.rollout.alarm"), rollback).otherwise(advance)
        done = sfn.Choice(self, "FullyShifted?")
        done.when(sfn.Condition.boolean_equals("$.state.rollout.done", True), promote).otherwise(bake)
        bake.next(check)
        check.next(alarm)
        chain = debounce.next(train).next(evaluate).next(register).next(sign)
        if manual_approval:  # a human approves the signed model (mlvault models approve|reject)
            approval = tasks.LambdaInvoke(
                self,
                "AwaitApproval",
                lambda_function=self.deploy.function,
                integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
                payload=sfn.TaskInput.from_object(
                    {"action": "request_approval", **state, **execution, "token": sfn.JsonPath.task_token}
                ),
                result_path="$.state",
                task_timeout=sfn.Timeout.duration(APPROVAL_TIMEOUT),
            )
            ends_the_run(approval, "approval")
            chain = chain.next(approval)
        definition = chain.next(prepare).next(advance).next(done)
        promote.next(sfn.Succeed(self, "Deployed"))
        return definition

"""The stateless model stack: the pipeline state machine (train -> evaluate -> register -> sign -> deploy in
canary steps), its functions, the serving function and its alarms, and what starts a run."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.constructs.discovery import publish
from infra.constructs.functions import ONE_VCPU_MB, FunctionPlatform, SecureFunction
from infra.policy.nag import acknowledge
from infra.policy.spec import BucketRole
from infra.settings import ROOT, StageSettings
from infra.stacks.storage_stack import StorageStack, bucket_arn_ack, bucket_name

SERVE_ALIAS = "live"
CONTRACTS_DIR = ROOT / "contracts"


class ModelsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        storage: StorageStack,
        alerts: sns.ITopic,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform = FunctionPlatform(self, "Platform", settings=settings, data_key=storage.data_key)
        models_bucket = bucket_name(self, settings, BucketRole.MODEL)
        lake = bucket_name(self, settings, BucketRole.LAKE)
        key_arn = storage.signing_key.key_arn
        objects = {p: f"arn:{self.partition}:s3:::{models_bucket}/{p}/*" for p in ("manifests", "models", "signatures")}
        contracts = {f"contracts/{p.relative_to(CONTRACTS_DIR)}": p for p in CONTRACTS_DIR.rglob("*.json")}
        registry = storage.registry_table.table_name

        # --- serving --------------------------------------------------------------------------------
        self.serve = SecureFunction(
            self,
            "Serve",
            platform=self.platform,
            name="serve",
            description="Serves predictions of the pinned model, after verifying its digest and signature",
            environment={
                "MLVAULT_REGISTRY_TABLE": registry,
                "MLVAULT_DRIFT_WINDOW_ROWS": str(settings.drift_alarm["windowRows"]),
            },
        )
        self.serve.allow(["s3:GetObject", "s3:GetObjectVersion"], [objects["models"], objects["signatures"]])
        self.serve.allow(["kms:GetPublicKey"], [key_arn])
        self.serve.allow(["dynamodb:GetItem"], [storage.registry_table.table_arn])
        self._data_key(self.serve, storage)
        self._ack_objects(self.serve, settings, ["models", "signatures"], "reads the pinned model and signature")
        errors = cloudwatch.Alarm(
            self,
            "ServingErrors",
            alarm_name=f"{settings.prefix}-serving-errors",
            metric=self.serve.function.metric_errors(period=Duration.minutes(1)),
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="The serving function failed (a refused model included)",
        )
        refused = cloudwatch.Alarm(
            self,
            "ModelRefused",
            alarm_name=f"{settings.prefix}-model-attestation-failed",
            metric=cloudwatch.Metric(
                namespace="mlvault",
                metric_name="ModelAttestationFailed",
                dimensions_map={"Stage": settings.stage},
                period=Duration.minutes(1),
                statistic="Sum",
            ),
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Serving refused a model whose digest or signature did not verify",
        )
        drift = cloudwatch.Alarm(
            self,
            "FeatureDriftAlarm",
            alarm_name=f"{settings.prefix}-feature-drift",
            metric=cloudwatch.Metric(
                namespace="mlvault",
                metric_name="MaxFeatureDrift",
                dimensions_map={"Stage": settings.stage},
                period=Duration.seconds(settings.drift_alarm["periodSeconds"]),
                statistic="Average",
            ),
            threshold=settings.drift_alarm["threshold"],
            evaluation_periods=settings.drift_alarm["evaluationPeriods"],
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="What serving sees drifted from the training baseline (PSI of the worst feature)",
        )
        alarms = [errors, refused, drift]
        # A refused model pages a human (an integrity failure, not a behaviour to roll back from: the live model
        # may be fine while another version was refused); errors and drift roll back automatically.
        refused.add_alarm_action(cloudwatch_actions.SnsAction(alerts))
        rollback_alarms = [errors, drift]
        for alarm in rollback_alarms:
            acknowledge(
                alarm,
                "NIST.800.53.R5-CloudWatchAlarmAction",
                "Acted on without alarm actions: its change to ALARM reaches EventBridge (CloudWatch Alarm State "
                "Change), which starts the automated rollback; the deploy step also reads it between canary steps.",
            )

        # --- pipeline functions -----------------------------------------------------------------------
        pipeline_env = {
            "MLVAULT_MODEL_BUCKET": models_bucket,
            "MLVAULT_LEDGER_TABLE": storage.ledger_table.table_name,
            "MLVAULT_REGISTRY_TABLE": registry,
            "MLVAULT_CONTRACTS_DIR": "contracts",
            "MLVAULT_SIGNING_KEY_ARN": key_arn,
            "MLVAULT_MODEL_GATES": json.dumps(settings.model_gates, sort_keys=True),
            "MLVAULT_TRAINING_PARAMS": json.dumps(settings.training, sort_keys=True),
        }
        self.pipeline = SecureFunction(
            self,
            "Pipeline",
            platform=self.platform,
            name="pipeline",
            description="Model pipeline steps: train (from a stored manifest), evaluate (gates), register",
            environment=pipeline_env,
            timeout=Duration.minutes(15),
            memory_size=ONE_VCPU_MB,
            with_arrow=True,
            extra_files=contracts,
        )
        self.pipeline.allow(["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:Query"], [storage.ledger_table.table_arn])
        self.pipeline.allow(["s3:GetObject", "s3:GetObjectVersion"], [f"arn:{self.partition}:s3:::{lake}/datasets/*"])
        acknowledge(
            self.pipeline.role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(settings, BucketRole.LAKE, '/datasets/*')}]",
            "Training reads the exact lake versions its manifest pins; their keys are content-addressed.",
        )
        self.pipeline.allow(
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [objects["manifests"], objects["models"]]
        )
        self._ack_objects(self.pipeline, settings, ["manifests", "models"], "stores manifests and artifacts")
        self._registry(self.pipeline, storage)
        self._data_key(self.pipeline, storage)

        self.sign = SecureFunction(
            self,
            "Sign",
            platform=self.platform,
            name="sign",
            description="Signs a registered model with the KMS model signing key (OpenSSF model-signing format)",
            environment=pipeline_env,
            timeout=Duration.minutes(2),
        )
        self.sign.allow(["kms:Sign", "kms:GetPublicKey"], [key_arn])
        self.sign.allow(["s3:GetObject", "s3:GetObjectVersion"], [objects["models"]])
        self.sign.allow(["s3:PutObject"], [objects["signatures"]])
        self._ack_objects(self.sign, settings, ["models", "signatures"], "reads artifacts, writes signatures")
        self._registry(self.sign, storage)
        self._data_key(self.sign, storage)

        self.deploy = SecureFunction(
            self,
            "Deploy",
            platform=self.platform,
            name="deploy",
            description="Verifies a signed model, pins it to a serving version and promotes it in canary steps",
            environment={
                "MLVAULT_SERVE_FUNCTION": self.serve.function.function_name,
                "MLVAULT_SERVE_ALIAS": SERVE_ALIAS,
                "MLVAULT_SIGNING_KEY_ARN": key_arn,
                "MLVAULT_CANARY_STEPS": json.dumps(
                    [{"percent": p, "waitSeconds": w} for p, w in settings.canary_steps]
                ),
                "MLVAULT_SERVING_ALARMS": ",".join(a.alarm_name for a in alarms),
                "MLVAULT_REGISTRY_TABLE": registry,
            },
            timeout=Duration.minutes(2),
        )
        serve_arn = self.serve.function.function_arn
        self.deploy.allow(
            [
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionConfiguration",
                "lambda:PublishVersion",
                "lambda:GetAlias",
                "lambda:CreateAlias",
                "lambda:UpdateAlias",
            ],
            [serve_arn, f"{serve_arn}:*"],
        )
        acknowledge(
            self.deploy.role,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.serve.function.node.default_child)}.Arn>:*]",
            "Deployments publish and route versions of the serving function only (its qualified ARNs).",
        )
        self.deploy.allow(["cloudwatch:DescribeAlarms"], [a.alarm_arn for a in alarms])
        executions = (
            f"arn:{self.partition}:states:{self.region}:{self.account}:execution:{settings.prefix}-model-pipeline:*"
        )
        self.deploy.allow(["states:DescribeExecution"], [executions])
        acknowledge(
            self.deploy.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:states:{settings.region}:<AWS::AccountId>:execution:"
            f"{settings.prefix}-model-pipeline:*]",
            "The deploy step checks whether the execution holding the deployment lock still runs (a stopped one "
            "never released it); executions are named per run.",
        )
        self.deploy.allow(["kms:GetPublicKey"], [key_arn])
        self.deploy.allow(["s3:GetObject", "s3:GetObjectVersion"], [objects["models"], objects["signatures"]])
        self._ack_objects(self.deploy, settings, ["models", "signatures"], "re-verifies the artifact and signature")
        self._registry(self.deploy, storage)
        self._data_key(self.deploy, storage)

        # --- the state machine -----------------------------------------------------------------------
        def step(fn: SecureFunction, name: str, payload: dict) -> tasks.LambdaInvoke:
            return tasks.LambdaInvoke(
                self,
                name,
                lambda_function=fn.function,
                payload=sfn.TaskInput.from_object(payload),
                payload_response_only=True,
                result_path="$.state",
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
        for task in (advance, check, promote):
            task.add_catch(rollback, errors=["States.ALL"], result_path="$.error")
        rollback.next(rolled_back)
        alarm = sfn.Choice(self, "AlarmFired?")
        alarm.when(sfn.Condition.is_not_null("$.state.rollout.alarm"), rollback).otherwise(advance)
        done = sfn.Choice(self, "FullyShifted?")
        done.when(sfn.Condition.boolean_equals("$.state.rollout.done", True), promote).otherwise(bake)
        bake.next(check)
        check.next(alarm)
        chain = debounce.next(train).next(evaluate).next(register).next(sign)
        if settings.manual_approval:  # a human approves the signed model (mlvault models approve|reject)
            approval = tasks.LambdaInvoke(
                self,
                "AwaitApproval",
                lambda_function=self.deploy.function,
                integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
                payload=sfn.TaskInput.from_object(
                    {"action": "request_approval", **state, **execution, "token": sfn.JsonPath.task_token}
                ),
                result_path="$.state",
                task_timeout=sfn.Timeout.duration(Duration.days(7)),
            )
            chain = chain.next(approval)
        definition = chain.next(prepare).next(advance).next(done)
        promote.next(sfn.Succeed(self, "Deployed"))
        log_group = logs.LogGroup(
            self,
            "PipelineLogs",
            log_group_name=f"/mlvault/{settings.stage}/states/pipeline",
            encryption_key=storage.data_key,
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "ModelPipeline",
            state_machine_name=f"{settings.prefix}-model-pipeline",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        for fn in (self.pipeline, self.sign, self.deploy):
            acknowledge(
                self.state_machine.role,
                f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(fn.function.node.default_child)}.Arn>:*]",
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

        # --- what starts a run -----------------------------------------------------------------------
        self.trigger = SecureFunction(
            self,
            "Trigger",
            platform=self.platform,
            name="trigger",
            description="Starts the model pipeline on accepted batches (debounced) and on the schedule",
            environment={
                "MLVAULT_STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "MLVAULT_TRAIN_DATASETS": ",".join(settings.train_datasets),
                "MLVAULT_TRAIN_DEBOUNCE_SECONDS": str(settings.train_debounce_seconds),
            },
        )
        self.trigger.allow(["states:StartExecution"], [self.state_machine.state_machine_arn])
        events.Rule(
            self,
            "OnAcceptedBatch",
            event_pattern=events.EventPattern(
                source=["mlvault.ingest"],
                detail_type=["Upload Accepted"],
                detail={"dataset": list(settings.train_datasets)},
            ),
            targets=[targets.LambdaFunction(self.trigger.function)],
        )
        events.Rule(
            self,
            "Nightly",
            schedule=events.Schedule.rate(Duration.days(1)),
            targets=[targets.LambdaFunction(self.trigger.function)],
        )

        # --- automated rollback ----------------------------------------------------------------------
        self.rollback = SecureFunction(
            self,
            "AutoRollback",
            platform=self.platform,
            name="rollback",
            description="Rolls serving back to the last verified good model on an alarm or a key revocation",
            environment={
                "MLVAULT_SERVE_FUNCTION": self.serve.function.function_name,
                "MLVAULT_SERVE_ALIAS": SERVE_ALIAS,
                "MLVAULT_SIGNING_KEY_ARN": key_arn,
                "MLVAULT_REGISTRY_TABLE": registry,
                "MLVAULT_LEDGER_TABLE": storage.ledger_table.table_name,
                "MLVAULT_ALERT_TOPIC_ARN": alerts.topic_arn,
                "MLVAULT_ROLLBACK_COOLDOWN_SECONDS": str(settings.rollback_cooldown_seconds),
            },
            timeout=Duration.minutes(5),
        )
        self.rollback.allow(
            ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetFunctionConfiguration"], [serve_arn, f"{serve_arn}:*"]
        )
        acknowledge(
            self.rollback.role,
            f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.serve.function.node.default_child)}.Arn>:*]",
            "A rollback reads the serving function's versions and moves its alias only.",
        )
        self.rollback.allow(["kms:GetPublicKey"], [key_arn])
        self.rollback.allow(["s3:GetObject", "s3:GetObjectVersion"], [objects["models"], objects["signatures"]])
        self._ack_objects(self.rollback, settings, ["models", "signatures"], "re-verifies the rollback target")
        self._registry(self.rollback, storage)
        self.rollback.allow(["dynamodb:Scan", "dynamodb:UpdateItem"], [storage.ledger_table.table_arn])
        self.rollback.allow(["sns:Publish"], [alerts.topic_arn])
        self.rollback.allow(
            ["events:PutEvents"], [f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/default"]
        )
        self._data_key(self.rollback, storage)
        events.Rule(
            self,
            "OnServingAlarm",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                detail={"alarmName": [a.alarm_name for a in rollback_alarms], "state": {"value": ["ALARM"]}},
            ),
            targets=[targets.LambdaFunction(self.rollback.function)],
        )
        self._dashboard(settings, alarms)

        publish(
            self,
            settings,
            {
                "rollback-function": self.rollback.function.function_name,
                "model-pipeline": self.state_machine.state_machine_arn,
                "serve-function": self.serve.function.function_name,
                "serve-alias": SERVE_ALIAS,
                "model-signing-key": key_arn,
            },
        )

    def _dashboard(self, settings: StageSettings, alarms: list[cloudwatch.Alarm]) -> None:
        def search(expression: str, label: str) -> cloudwatch.MathExpression:
            return cloudwatch.MathExpression(
                expression=f"SEARCH('{expression}', 'Sum', 300)", label=label, using_metrics={}
            )

        stage = settings.stage
        verdicts = [
            cloudwatch.Metric(
                namespace="mlvault",
                metric_name="Verdicts",
                dimensions_map={"Stage": stage, "Status": status},
                statistic="Sum",
                period=Duration.minutes(5),
                label=status,
            )
            for status in ("ACCEPTED", "REJECTED", "HELD")
        ]
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{settings.prefix}-overview")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Ingest verdicts", left=verdicts, width=8),
            cloudwatch.GraphWidget(
                title="Reason codes",
                left=[search(f'{{mlvault,Stage,Reason}} MetricName="Verdicts" Stage="{stage}"', "reason")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Unaccounted ingest versions",
                left=[
                    cloudwatch.Metric(
                        namespace="mlvault",
                        metric_name="Unaccounted",
                        dimensions_map={"Stage": stage},
                        statistic="Maximum",
                    )
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Feature drift (PSI) per model version and feature",
                left=[
                    search(f'{{mlvault,Stage,ModelVersion,Feature}} MetricName="FeatureDrift" Stage="{stage}"', "drift")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Canary weight (%)",
                left=[
                    cloudwatch.Metric(
                        namespace="mlvault",
                        metric_name="CanaryWeight",
                        dimensions_map={"Stage": stage},
                        statistic="Maximum",
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Rollbacks and refused models",
                left=[
                    cloudwatch.Metric(
                        namespace="mlvault", metric_name="Rollbacks", dimensions_map={"Stage": stage}, statistic="Sum"
                    ),
                    cloudwatch.Metric(
                        namespace="mlvault",
                        metric_name="ModelAttestationFailed",
                        dimensions_map={"Stage": stage},
                        statistic="Sum",
                    ),
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(alarms=alarms, title="Serving alarms", width=24))

    def _registry(self, fn: SecureFunction, storage: StorageStack) -> None:
        fn.allow(
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"],
            [storage.registry_table.table_arn],
        )

    def _data_key(self, fn: SecureFunction, storage: StorageStack) -> None:
        fn.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], [storage.data_key.key_arn])

    def _ack_objects(self, fn: SecureFunction, settings: StageSettings, prefixes: list[str], why: str) -> None:
        for prefix in prefixes:
            acknowledge(
                fn.role,
                f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(settings, BucketRole.MODEL, f'/{prefix}/*')}]",
                f"The {fn.node.id.lower()} function {why}; keys are content-addressed or per model.",
            )

"""The automated rollback: a rolling-back serving alarm's change to ALARM reaches the rollback function through
EventBridge, which re-verifies the last good model and moves the serving alias back to it (also called by
`mlvault producers revoke` for models trained on revoked data)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.constructs.model_resources import ModelResources
from infra.constructs.serving import Serving
from infra.constructs.serving_alarms import ServingAlarms
from mlvault.wiring import DetailType, Env

CLOUDWATCH_SOURCE = "aws.cloudwatch"  # AWS's source of DetailType.ALARM_STATE_CHANGE
ALARM_STATE = "ALARM"


class AutomatedRollback(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        models: ModelResources,
        serving: Serving,
        alarms: ServingAlarms,
        alerts: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = fn = SecureFunction(
            self,
            "AutoRollback",
            platform=platform,
            name="rollback",
            description="Rolls serving back to the last verified good model on an alarm or a key revocation",
            environment={
                **serving.environment,
                Env.SIGNING_KEY_ARN: models.signing_key.key_arn,
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.LEDGER_TABLE: models.ledger.table_name,
                Env.ALERT_TOPIC_ARN: alerts.topic_arn,
                Env.ROLLBACK_COOLDOWN_SECONDS: str(platform.settings.rollback_cooldown_seconds),
            },
            timeout=Duration.minutes(5),
        )
        serving.allow_routing(
            fn,
            ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetFunctionConfiguration"],
            "A rollback reads the serving function's versions and moves its alias only.",
        )
        models.allow_verification(fn, "re-verifies the rollback target")
        models.allow_registry(fn)
        fn.allow(["dynamodb:Scan", "dynamodb:UpdateItem"], [models.ledger.table_arn])
        fn.allow(["sns:Publish"], [alerts.topic_arn])
        fn.allow_events()
        fn.allow_data_key()
        events.Rule(
            self,
            "OnServingAlarm",
            event_pattern=events.EventPattern(
                source=[CLOUDWATCH_SOURCE],
                detail_type=[DetailType.ALARM_STATE_CHANGE],
                detail={
                    "alarmName": [a.alarm_name for a in alarms.rolling_back],
                    "state": {"value": [ALARM_STATE]},
                },
            ),
            targets=[targets.LambdaFunction(fn.function)],
        )

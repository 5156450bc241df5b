"""The automated rollback: a rolling-back serving alarm's change to ALARM reaches the rollback function through
EventBridge; the function reads the alarm's real state and history from CloudWatch (it acts for the stage's own
alarms only, from its bundled anchors; which model an alarm judges and where that model is served, from its bundled
serving facts), re-verifies that model's last good version and moves its serving alias back to it. A
schedule delivers the announcements its reports left pending. Key revocations have their own function
(infra/constructs/key_revocation.py): permission to revoke is not permission to roll back."""

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
from infra.constructs.trust_anchors import TrustAnchors
from mlvault.wiring import DetailType, Env

CLOUDWATCH_SOURCE = "aws.cloudwatch"  # AWS's source of DetailType.ALARM_STATE_CHANGE
ALARM_STATE = "ALARM"
SWEEP_EVERY = Duration.minutes(15)  # pending rollback and revocation announcements (mlvault.outbox)


class AutomatedRollback(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        models: ModelResources,
        serving: list[Serving],
        alarms: list[ServingAlarms],
        alerts: sns.ITopic,
        anchors: TrustAnchors,
        serving_bundle: dict,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = fn = SecureFunction(
            self,
            "AutoRollback",
            platform=platform,
            name="rollback",
            description="Rolls a model's serving back to its last verified good version when one of its alarms fires",
            environment={
                Env.REGISTRY_TABLE: models.registry.table_name,
                Env.ALERT_TOPIC_ARN: alerts.topic_arn,
                Env.ROLLBACK_COOLDOWN_SECONDS: str(platform.settings.rollback_cooldown_seconds),
            },
            timeout=Duration.minutes(5),
            anchors=anchors,
            bundle=serving_bundle,
        )
        for each in serving:
            each.allow_routing(
                fn,
                ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetFunctionConfiguration"],
                "A rollback reads the serving functions' versions and moves their alias only.",
            )
        rolling_back = [alarm for each in alarms for alarm in each.rolling_back]
        models.allow_verification(fn, "re-verifies the rollback target")
        models.allow_registry(fn)
        fn.allow(["sns:Publish"], [alerts.topic_arn])
        # It believes no event: it reads the alarm's real state and history from CloudWatch, for its own alarms only.
        fn.allow(["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"], [a.alarm_arn for a in rolling_back])
        fn.allow_events()
        fn.allow_data_key()
        events.Rule(
            self,
            "OnServingAlarm",
            event_pattern=events.EventPattern(
                source=[CLOUDWATCH_SOURCE],
                detail_type=[DetailType.ALARM_STATE_CHANGE],
                detail={
                    "alarmName": [name for each in alarms for name in each.rollback_names],
                    "state": {"value": [ALARM_STATE]},
                },
            ),
            targets=[targets.LambdaFunction(fn.function)],
        )
        events.Rule(
            self,
            "RollbackOutboxSweep",
            schedule=events.Schedule.rate(SWEEP_EVERY),
            targets=[targets.LambdaFunction(fn.function)],
        )

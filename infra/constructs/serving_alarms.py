"""One model's serving alarms: errors, refused models and feature drift. A refused model pages a human; errors and
drift roll that model's serving back automatically (their state changes reach EventBridge), and its deploy step
reads all three (their history over the whole canary) between canary steps.

The errors alarm counts the function errors of invocations through the model's `live` alias only (Lambda's Errors
metric with the Resource dimension `<function>:live`; the function URL invokes the alias too), which are server
errors only: a caller's bad request is answered as a client error (the ClientErrors metric, watched by no alarm)
and a refused model as its own alarm's metric; and invoking some other published version (say, one an insider
published with other pins) counts nowhere here, so it cannot roll production back. The refused and drift alarms
watch the model's own metrics (dimensions Stage and Model, mlvault.wiring.Dimension.MODEL)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import SecureFunction
from infra.constructs.metrics import stage_metric
from infra.model_settings import ModelSettings
from infra.policy.nag import acknowledge
from infra.settings import StageSettings
from mlvault.wiring import SERVE_ALIAS, Dimension, Metric


def alarm_names(settings: StageSettings, model: str) -> dict[str, str]:
    """A model's serving alarms' fixed names, by role (errors, refused, drift): known before the alarms exist, so
    that the trust anchors and serving facts of the functions that act on them can name them."""
    return {
        "errors": f"{settings.prefix}-{model}-serving-errors",
        "refused": f"{settings.prefix}-{model}-model-attestation-failed",
        "drift": f"{settings.prefix}-{model}-feature-drift",
    }


ROLLING_BACK = ("errors", "drift")  # the alarms that roll serving back automatically
CHECKED_BY_CANARY = ("errors", "refused", "drift")  # the alarms the deploy step reads between canary steps


class ServingAlarms(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        model: ModelSettings,
        serve: lambda_.IFunction,
        alerts: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        drift = settings.drift_alarm
        self.names = names = alarm_names(settings, model.name)  # by role: fixed names, no tokens
        self.model = model
        own = {Dimension.MODEL: model.name}
        self._scope = Construct(self, model.scope_id)  # leads the logical ids: IrisServingErrors...
        self.errors = self._on_any(
            "ServingErrors",
            name=names["errors"],
            metric=cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions_map={
                    "FunctionName": serve.function_name,
                    "Resource": f"{serve.function_name}:{SERVE_ALIAS}",
                },
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            description=f"Model {model.name}'s serving function failed through its live alias (server errors; not "
            "client errors)",
        )
        self.refused = self._on_any(
            "ModelRefused",
            name=names["refused"],
            metric=stage_metric(
                settings.stage,
                Metric.MODEL_ATTESTATION_FAILED,
                statistic="Sum",
                period=Duration.minutes(1),
                dimensions=own,
            ),
            description=f"Serving of {model.name} refused a model whose digest or signature did not verify",
        )
        self.drift = cloudwatch.Alarm(
            self._scope,
            "FeatureDriftAlarm",
            alarm_name=names["drift"],
            metric=stage_metric(
                settings.stage,
                Metric.MAX_FEATURE_DRIFT,
                statistic="Average",
                period=Duration.seconds(drift.period_seconds),
                dimensions=own,
            ),
            threshold=drift.threshold,
            evaluation_periods=drift.evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"What serving of {model.name} sees drifted from the training baseline (PSI of the "
            "worst feature)",
        )
        # A refused model is an integrity failure, not a behaviour to roll back from: the live model may be fine
        # while another version was refused.
        self.refused.add_alarm_action(cloudwatch_actions.SnsAction(alerts))
        for alarm in self.rolling_back:
            acknowledge(
                alarm,
                "NIST.800.53.R5-CloudWatchAlarmAction",
                "Acted on without alarm actions: its change to ALARM reaches EventBridge (CloudWatch Alarm State "
                "Change), which starts the automated rollback; the deploy step also reads it between canary steps.",
            )

    def _on_any(
        self, construct_id: str, *, name: str, metric: cloudwatch.IMetric, description: str
    ) -> cloudwatch.Alarm:
        """An alarm on the first occurrence in a period (a count of at least one); no data is no occurrence."""
        return cloudwatch.Alarm(
            self._scope,
            construct_id,
            alarm_name=name,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    @property
    def _by_role(self) -> dict[str, cloudwatch.Alarm]:
        return {"errors": self.errors, "refused": self.refused, "drift": self.drift}

    @property
    def all(self) -> list[cloudwatch.Alarm]:
        return [self._by_role[r] for r in CHECKED_BY_CANARY]

    @property
    def rolling_back(self) -> list[cloudwatch.Alarm]:
        """The alarms that roll serving back automatically."""
        return [self._by_role[r] for r in ROLLING_BACK]

    @property
    def rollback_names(self) -> tuple[str, ...]:
        return tuple(self.names[r] for r in ROLLING_BACK)

    @property
    def canary_names(self) -> tuple[str, ...]:
        return tuple(self.names[r] for r in CHECKED_BY_CANARY)

    def allow_reading(self, fn: SecureFunction) -> None:
        """The state and the history of the alarms a canary is judged by."""
        fn.allow(["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"], [a.alarm_arn for a in self.all])

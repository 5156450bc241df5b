"""The stage's overview dashboard: ingest verdicts and reason codes, unaccounted ingest versions; then one row per
model: its drift per serving version and feature, its predictions, refused models and client errors by reason code
(no alarm watches client errors: a bad request never rolls a good model back), and its serving alarms; and the
stage's canary weight and rollbacks."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.metrics import stage_metric, stage_search
from infra.constructs.serving_alarms import ServingAlarms
from infra.settings import StageSettings
from mlvault.wiring import Dimension, Metric

# The Status values of the Verdicts metric: the ledger's terminal statuses (mlvault.ledger.TERMINAL; infra takes
# names from mlvault.wiring only, which does not hold these yet).
VERDICT_STATUSES = ("ACCEPTED", "REJECTED", "HELD")


def _graph(title: str, *metrics: cloudwatch.IMetric) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(metrics), width=8)


class OverviewDashboard(Concern):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StageSettings, alarms: list[ServingAlarms]
    ) -> None:
        super().__init__(scope, construct_id)
        stage = settings.stage
        verdicts = [
            stage_metric(
                stage,
                Metric.VERDICTS,
                statistic="Sum",
                period=Duration.minutes(5),
                label=status,
                dimensions={Dimension.STATUS: status},
            )
            for status in VERDICT_STATUSES
        ]
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{settings.prefix}-overview")
        dashboard.add_widgets(
            _graph("Ingest verdicts", *verdicts),
            _graph("Reason codes", stage_search(stage, Metric.VERDICTS, dimensions=[Dimension.REASON], label="reason")),
            _graph("Unaccounted ingest versions", stage_metric(stage, Metric.UNACCOUNTED, statistic="Maximum")),
        )
        dashboard.add_widgets(
            _graph("Canary weight (%)", stage_metric(stage, Metric.CANARY_WEIGHT, statistic="Maximum")),
            _graph(
                "Rollbacks and refused models",
                stage_metric(stage, Metric.ROLLBACKS, statistic="Sum"),
                stage_metric(stage, Metric.MODEL_ATTESTATION_FAILED, statistic="Sum"),
            ),
            _graph(
                "Serving: client errors by reason code (not alarmed)",
                stage_search(stage, Metric.CLIENT_ERRORS, dimensions=[Dimension.REASON], label="reason"),
            ),
        )
        for each in alarms:  # one row per model: its own metrics (dimension Model) and alarms
            model = each.model.name
            own = {Dimension.MODEL: model}
            drift = stage_search(
                stage,
                Metric.FEATURE_DRIFT,
                dimensions=[Dimension.MODEL, Dimension.MODEL_VERSION, Dimension.FEATURE],
                label="drift",
                where={Dimension.MODEL: model},
            )
            dashboard.add_widgets(
                cloudwatch.TextWidget(markdown=f"### Model {model} (dataset {each.model.dataset})", width=24, height=1),
            )
            dashboard.add_widgets(
                _graph(f"{model}: feature drift (PSI) per serving version and feature", drift),
                _graph(
                    f"{model}: predictions and refused models",
                    stage_metric(stage, Metric.PREDICTIONS, statistic="Sum", label="predictions", dimensions=own),
                    stage_metric(
                        stage, Metric.MODEL_ATTESTATION_FAILED, statistic="Sum", label="refused", dimensions=own
                    ),
                ),
                cloudwatch.AlarmStatusWidget(alarms=each.all, title=f"{model}: serving alarms", width=8),
            )

"""mlvault's metrics as CloudWatch sees them: namespace, names and dimensions from mlvault.wiring, per stage."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from mlvault.wiring import NAMESPACE, Dimension


def stage_metric(
    stage: str,
    name: str,
    *,
    statistic: str,
    period: Duration | None = None,
    label: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> cloudwatch.Metric:
    """One of mlvault's metrics of a stage (dimension Stage, plus `dimensions`)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={Dimension.STAGE: stage, **(dimensions or {})},
        statistic=statistic,
        period=period,
        label=label,
    )


def stage_search(
    stage: str, name: str, *, dimensions: list[str], label: str, where: dict[str, str] | None = None
) -> cloudwatch.MathExpression:
    """Every series of a metric of the stage over the dimensions (Stage first), summed per 5 minutes; `where`
    narrows the search to given dimension values (a model's own series)."""
    schema = ",".join([NAMESPACE, Dimension.STAGE, *dimensions])
    terms = " ".join(f'{key}="{value}"' for key, value in {Dimension.STAGE: stage, **(where or {})}.items())
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{{{schema}}} MetricName=\"{name}\" {terms}', 'Sum', 300)",
        label=label,
        using_metrics={},
    )

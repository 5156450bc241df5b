"""Monitoring resources: CloudWatch Logs log groups, CloudWatch dashboards and metric alarms."""

from __future__ import annotations

from typing import Any

from localcloud.resources.cfn_context import Handler, ResourceContext, tag_map, tags


def log_group(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("LogGroupName", "KmsKeyId", "RetentionInDays", "Tags")
    logs = c.client("logs")
    name = p.get("LogGroupName") or c.unique_name(512)
    args = {"logGroupName": name, "tags": tag_map(p)}
    if "KmsKeyId" in p:
        args["kmsKeyId"] = p["KmsKeyId"]
    logs.create_log_group(**args)
    if "RetentionInDays" in p:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    return name, {"Arn": f"arn:aws:logs:{c.region}:{c.account}:log-group:{name}:*"}


def dashboard(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take("DashboardName", "DashboardBody", "Tags")
    name = p.get("DashboardName") or c.unique_name(255)
    cloudwatch = c.client("cloudwatch")
    cloudwatch.put_dashboard(DashboardName=name, DashboardBody=p["DashboardBody"])
    # Tags: moto cannot tag dashboards (TagResource fails for their ARN). A dashboard's tags carry no access
    # decision, so they are accepted and not applied here, on purpose and only for this type.
    return name, {}


def alarm(c: ResourceContext) -> tuple[Any, dict[str, Any]]:
    p = c.take(
        "AlarmName",
        "AlarmDescription",
        "MetricName",
        "Namespace",
        "Statistic",
        "ExtendedStatistic",
        "Period",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "Dimensions",
        "Metrics",
        "AlarmActions",
        "OKActions",
        "ActionsEnabled",
        "InsufficientDataActions",
        "Unit",
        "Tags",
    )
    name = p.pop("AlarmName", None) or c.unique_name(255)
    args = {k: v for k, v in p.items() if k != "Tags"}
    if "Tags" in p:
        args["Tags"] = tags(p)
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in args:
            args[key] = int(args[key])
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    c.client("cloudwatch").put_metric_alarm(AlarmName=name, **args)
    return name, {"Arn": f"arn:aws:cloudwatch:{c.region}:{c.account}:alarm:{name}"}


HANDLERS: dict[str, Handler] = {
    "AWS::Logs::LogGroup": log_group,
    "AWS::CloudWatch::Dashboard": dashboard,
    "AWS::CloudWatch::Alarm": alarm,
}

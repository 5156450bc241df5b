"""A small CDK app exercising what the local cloud must support beyond mlvault's own stacks today:
EventBridge -> Lambda and Step Functions targets, a Step Functions Lambda task, CloudWatch alarm events,
asynchronous invocation with a DLQ, Lambda versions and weighted aliases, an asymmetric KMS key, metrics in
Embedded Metric Format and alarms evaluated from metric data."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

HERE = Path(__file__).parent


def build_gaps_app(outdir: Path, extra=None) -> App:
    app = App(outdir=str(outdir))
    stack = Stack(app, "gaps", env=Environment(region="eu-west-1"))
    records = s3.Bucket(stack, "Records", removal_policy=RemovalPolicy.RETAIN)
    dlq = sqs.Queue(stack, "EchoDlq")
    echo = lambda_.Function(
        stack,
        "Echo",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(HERE / "echo")),
        environment={"RECORDS_BUCKET": records.bucket_name},
        dead_letter_queue=dlq,
        timeout=Duration.seconds(10),
        logging_format=lambda_.LoggingFormat.JSON,
    )
    records.grant_write(echo)
    machine = sfn.StateMachine(
        stack,
        "Machine",
        definition_body=sfn.DefinitionBody.from_chainable(
            tasks.LambdaInvoke(stack, "Call", lambda_function=echo, payload_response_only=True).next(
                sfn.Pass(stack, "Done")
            )
        ),
    )
    rule = events.Rule(stack, "TestEvents", event_pattern=events.EventPattern(source=["mlvault.test"]))
    rule.add_target(targets.LambdaFunction(echo))
    rule.add_target(targets.SfnStateMachine(machine))
    alarm = cloudwatch.Alarm(
        stack,
        "Drift",
        metric=cloudwatch.Metric(namespace="mlvault", metric_name="Drift"),
        threshold=0.2,
        evaluation_periods=1,
    )
    events.Rule(
        stack,
        "AlarmEvents",
        event_pattern=events.EventPattern(
            source=["aws.cloudwatch"], detail_type=["CloudWatch Alarm State Change"], resources=[alarm.alarm_arn]
        ),
    ).add_target(targets.LambdaFunction(echo))
    events.Rule(stack, "Daily", schedule=events.Schedule.rate(Duration.days(1))).add_target(
        targets.LambdaFunction(echo)
    )  # must receive no ordinary event (moto would match a schedule rule to every event)
    lambda_.Function(
        stack,
        "Model",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(HERE / "model")),
        environment={"MODEL": "initial"},
    )  # versions and weighted aliases: each version answers with the MODEL it was published with
    kms.Key(
        stack,
        "Signing",
        key_spec=kms.KeySpec.ECC_NIST_P256,
        key_usage=kms.KeyUsage.SIGN_VERIFY,
        removal_policy=RemovalPolicy.RETAIN,
    )
    lambda_.Function(
        stack,
        "Metrics",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(HERE / "metrics")),
    )  # prints its event's metrics in Embedded Metric Format
    latency = cloudwatch.Alarm(
        stack,
        "Latency",
        metric=cloudwatch.Metric(
            namespace="mlvault.test",
            metric_name="Latency",
            dimensions_map={"Service": "alarmed"},
            statistic="Maximum",
            period=Duration.minutes(1),
        ),
        threshold=0.2,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
    )  # evaluated from metric data (gap 13): its state moves with data only
    cloudwatch.Alarm(
        stack,
        "Quiet",
        metric=cloudwatch.Metric(
            namespace="mlvault.test", metric_name="Quiet", statistic="Sum", period=Duration.minutes(1)
        ),
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )  # never receives data: stays OK
    alarm_queue = sqs.Queue(stack, "LatencyAlarmEvents")
    events.Rule(
        stack,
        "LatencyAlarm",
        event_pattern=events.EventPattern(
            source=["aws.cloudwatch"], detail_type=["CloudWatch Alarm State Change"], resources=[latency.alarm_arn]
        ),
    ).add_target(targets.SqsQueue(alarm_queue))
    if extra:
        extra(stack)
    app.synth()
    return app

"""A small CDK app exercising what the local cloud must support beyond mlvault's own stacks today:
EventBridge -> Lambda and Step Functions targets, a Step Functions Lambda task, CloudWatch alarm events,
asynchronous invocation with a DLQ, Lambda versions and weighted aliases, an asymmetric KMS key, metrics in
Embedded Metric Format and alarms evaluated from metric data; and (`guarantees`, an `extra`) what mlvault's
guarantees rest on: producers' roles confined to their prefixes of a KMS-encrypted bucket, a COMPLIANCE lake whose
policy denies unlocking to all but a break-glass role, a key only break-glass may disable, a Wait state,
S3 -> SNS notifications, custom resources, and code signed by AWS Signer in a custom resource and deployed
under an Enforce code signing config."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CustomResource, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_signer as signer
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
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


RUNTIME = lambda_.Runtime.PYTHON_3_14
BREAK_GLASS = "gaps-break-glass"


def guarantees(stack: Stack) -> None:
    account = stack.account
    break_glass = iam.Role(stack, "BreakGlass", role_name=BREAK_GLASS, assumed_by=iam.AccountRootPrincipal())
    break_glass.add_to_policy(iam.PolicyStatement(actions=["s3:*", "kms:*"], resources=["*"]))

    # producers: each may write only under its own prefix of a versioned, KMS-encrypted ingest bucket
    data_key = kms.Key(stack, "DataKey", removal_policy=RemovalPolicy.RETAIN)
    ingest = s3.Bucket(
        stack,
        "Ingest",
        versioned=True,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=data_key,
        bucket_key_enabled=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    for producer in ("alpha", "beta"):
        role = iam.Role(
            stack,
            f"Producer{producer.title()}",
            role_name=f"gaps-producer-{producer}",
            assumed_by=iam.AccountRootPrincipal(),
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[ingest.arn_for_objects(f"producers/{producer}/*")])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[data_key.key_arn])
        )
    reader = iam.Role(stack, "Reader", role_name="gaps-reader", assumed_by=iam.AccountRootPrincipal())
    reader.add_to_policy(
        iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[ingest.arn_for_objects("*")])
    )  # no kms:Decrypt: S3 cannot decrypt for it

    # a COMPLIANCE lake: its policy denies unlocking to everyone but break-glass; a verifier role allowed a lot
    lake = s3.Bucket(
        stack,
        "Lake",
        versioned=True,
        object_lock_enabled=True,
        object_lock_default_retention=s3.ObjectLockRetention.compliance(Duration.days(7)),
        removal_policy=RemovalPolicy.RETAIN,
    )
    lake.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyUnlockExceptBreakGlass",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=[
                "s3:PutObjectRetention",
                "s3:PutObjectLegalHold",
                "s3:DeleteObjectVersion",
                "s3:BypassGovernanceRetention",
            ],
            resources=[lake.arn_for_objects("*")],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": break_glass.role_arn}},
        )
    )
    verifier = iam.Role(stack, "Verifier", role_name="gaps-verifier", assumed_by=iam.AccountRootPrincipal())
    verifier.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:PutObjectVersionTagging",
                "s3:PutObjectRetention",
                "s3:PutObjectLegalHold",
            ],
            resources=[lake.arn_for_objects("*")],
        )
    )
    s3.Bucket(stack, "Vault", versioned=True, object_lock_enabled=True, removal_policy=RemovalPolicy.RETAIN)

    # a signing key only break-glass may disable, delete, re-policy or grant; a role its policy names itself
    key_user = iam.Role(stack, "KeyUser", role_name="gaps-key-user", assumed_by=iam.AccountRootPrincipal())
    key_user.add_to_policy(iam.PolicyStatement(actions=["kms:Sign", "kms:GetPublicKey"], resources=["*"]))
    named = iam.Role(stack, "KeyNamed", role_name="gaps-key-named", assumed_by=iam.AccountRootPrincipal())
    guarded = kms.Key(
        stack,
        "Guarded",
        key_spec=kms.KeySpec.ECC_NIST_P256,
        key_usage=kms.KeyUsage.SIGN_VERIFY,
        removal_policy=RemovalPolicy.RETAIN,
    )
    guarded.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyDestructionExceptBreakGlass",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant"],
            resources=["*"],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": break_glass.role_arn}},
        )
    )
    guarded.add_to_resource_policy(
        iam.PolicyStatement(principals=[iam.ArnPrincipal(named.role_arn)], actions=["kms:Sign"], resources=["*"])
    )
    deployer = iam.Role(stack, "Deployer", role_name="gaps-deployer", assumed_by=iam.AccountRootPrincipal())
    deployer.add_to_policy(
        iam.PolicyStatement(
            actions=["lambda:UpdateFunctionConfiguration", "lambda:GetFunctionConfiguration"], resources=["*"]
        )
    )  # may change configuration, not pass a role

    # a Wait state of two minutes: two seconds with alarm_scale 60
    sfn.StateMachine(
        stack,
        "Bake",
        definition_body=sfn.DefinitionBody.from_chainable(
            sfn.Wait(stack, "BakeWait", time=sfn.WaitTime.duration(Duration.minutes(2))).next(sfn.Pass(stack, "Baked"))
        ),
    )

    # S3 -> SNS notifications: one topic delivering to a queue, one the tests delete
    uploads = sns.Topic(stack, "Uploads")
    gone = sns.Topic(stack, "Gone")
    notified_queue = sqs.Queue(stack, "UploadNotifications")
    uploads.add_subscription(subscriptions.SqsSubscription(notified_queue, raw_message_delivery=True))
    notified = s3.Bucket(stack, "Notified", versioned=True, removal_policy=RemovalPolicy.RETAIN)
    notified.node.default_child.add_property_override(
        "NotificationConfiguration",
        {
            "TopicConfigurations": [
                {"Event": "s3:ObjectCreated:*", "Topic": uploads.topic_arn, "Filter": _prefix("sns/")},
                {"Event": "s3:ObjectCreated:*", "Topic": gone.topic_arn, "Filter": _prefix("gone/")},
            ]
        },
    )

    # a custom resource whose provider answers the ResponseURL; its Data read by Fn::GetAtt
    responder = _function(stack, "Responder", "responder")
    answer = CustomResource(
        stack,
        "Answer",
        service_token=responder.function_arn,
        resource_type="Custom::Answer",
        properties={"Question": "life"},
    )
    ssm.StringParameter(
        stack, "AnswerValue", parameter_name="/gaps/answer", string_value=answer.get_att_string("Answer")
    )

    # code signing: a custom resource signs the model asset with Signer; the function deploys the signed object
    profile = signer.SigningProfile(stack, "Profile", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA)
    enforced = lambda_.CodeSigningConfig(
        stack,
        "Enforced",
        signing_profiles=[profile],
        untrusted_artifact_on_deployment=lambda_.UntrustedArtifactOnDeployment.ENFORCE,
    )
    warned = lambda_.CodeSigningConfig(
        stack,
        "Warned",
        signing_profiles=[profile],
        untrusted_artifact_on_deployment=lambda_.UntrustedArtifactOnDeployment.WARN,
    )
    code = s3_assets.Asset(stack, "ModelCode", path=str(HERE / "model"))
    assets = s3.Bucket.from_bucket_name(stack, "Assets", code.s3_bucket_name)
    sign = _function(stack, "SignAsset", "sign_asset", timeout=Duration.seconds(30))
    sign.add_to_role_policy(
        iam.PolicyStatement(actions=["signer:StartSigningJob"], resources=[profile.signing_profile_arn])
    )
    sign.add_to_role_policy(
        iam.PolicyStatement(
            actions=["signer:DescribeSigningJob"],
            resources=[f"arn:aws:signer:{stack.region}:{account}:/signing-jobs/*"],
        )
    )
    sign.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[assets.arn_for_objects("*")])
    )
    sign.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:PutObject"], resources=[assets.arn_for_objects("signed/*")])
    )
    signed_code = CustomResource(
        stack,
        "SignModel",
        service_token=sign.function_arn,
        resource_type="Custom::SignedCode",
        properties={
            "Bucket": code.s3_bucket_name,
            "Key": code.s3_object_key,
            "ProfileName": profile.signing_profile_name,
            "Prefix": "signed/",
        },
    )
    lambda_.Function(
        stack,
        "Signed",
        runtime=RUNTIME,
        handler="handler.handler",
        code=lambda_.Code.from_bucket(assets, signed_code.get_att_string("Key"), signed_code.get_att_string("Version")),
        code_signing_config=enforced,
        environment={"MODEL": "signed"},
    )
    lambda_.Function(
        stack,
        "Unsigned",
        runtime=RUNTIME,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(HERE / "model")),
        code_signing_config=warned,
        environment={"MODEL": "unsigned"},
    )  # Warn: deployed with a warning


def _prefix(prefix: str) -> dict:
    return {"S3Key": {"Rules": [{"Name": "prefix", "Value": prefix}]}}


def _function(stack: Stack, name: str, folder: str, timeout: Duration | None = None) -> lambda_.Function:
    return lambda_.Function(
        stack,
        name,
        runtime=RUNTIME,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(HERE / folder)),
        timeout=timeout or Duration.seconds(10),
    )


def failing_custom_resource(reason: str = "", silent: bool = False):
    """An `extra` for build_gaps_app: a custom resource whose provider answers FAILED with the reason, or nothing."""

    def extra(stack: Stack) -> None:
        provider = _function(stack, "Refuser", "responder", timeout=Duration.seconds(5))
        properties = {"Silent": "true"} if silent else {"Fail": "true", "Reason": reason}
        CustomResource(stack, "Refused", service_token=provider.function_arn, properties=properties)

    return extra

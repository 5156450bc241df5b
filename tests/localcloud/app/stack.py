"""A small CDK app exercising what the local cloud must support beyond mlvault's own stacks today:
EventBridge -> Lambda and Step Functions targets, a Step Functions Lambda task, CloudWatch alarm events,
asynchronous invocation with a DLQ, Lambda versions and weighted aliases, an asymmetric KMS key, metrics in
Embedded Metric Format and alarms evaluated from metric data; and (`guarantees`, an `extra`) what mlvault's
guarantees rest on: producers' roles confined to their prefixes of a KMS-encrypted bucket, a COMPLIANCE lake whose
policy denies unlocking to all but a break-glass role, a key only break-glass may disable, a Wait state,
S3 -> SNS notifications, custom resources, and code signed by AWS Signer in a custom resource and deployed
under an Enforce code signing config; and (`byom`, an `extra`) a team's own training: a SageMaker training job role
of least privilege, a KMS-encrypted bucket, a state machine running `createTrainingJob.sync`, and a function whose
`live` alias is reached through a function URL with AWS_IAM auth (and its $LATEST through a public one)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CustomResource, Duration, Environment, RemovalPolicy, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
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


TRAINING_ROLE = "gaps-training"
URL_CALLER = "gaps-url-caller"
URL_STRANGER = "gaps-url-stranger"
NO_PASS = "gaps-trainer-no-pass"


def byom(stack: Stack) -> None:
    """SageMaker training and function URLs (gaps 23 to 25)."""
    key = kms.Key(stack, "TrainingKey", removal_policy=RemovalPolicy.RETAIN)
    data = s3.Bucket(
        stack,
        "TrainingData",
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        versioned=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    jobs = f"arn:aws:sagemaker:{stack.region}:{stack.account}:training-job"
    job_role = iam.Role(
        stack,
        "TrainingRole",
        role_name=TRAINING_ROLE,
        assumed_by=iam.ServicePrincipal(
            "sagemaker.amazonaws.com",
            conditions={  # confused deputy: SageMaker, for the tests' jobs (named t... and s...) only
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": [f"{jobs}/t*", f"{jobs}/s*"]},
            },
        ),
    )
    # least privilege: list and read the channel and code prefixes, write the jobs' output, use the key
    job_role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[data.bucket_arn],
            conditions={"StringLike": {"s3:prefix": ["channels/*", "code/*"]}},
        )
    )
    job_role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[data.arn_for_objects("channels/*"), data.arn_for_objects("code/*")]
        )
    )
    job_role.add_to_policy(
        iam.PolicyStatement(
            effect=iam.Effect.DENY, actions=["s3:GetObject"], resources=[data.arn_for_objects("channels/locked/*")]
        )
    )
    job_role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[data.arn_for_objects("jobs/*")]))
    job_role.add_to_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=[key.key_arn],
            conditions={  # through S3, for this bucket (S3 Bucket Keys: the bucket is the encryption context)
                "StringEquals": {
                    "kms:ViaService": f"s3.{stack.region}.amazonaws.com",
                    "kms:EncryptionContext:aws:s3:arn": data.bucket_arn,
                }
            },
        )
    )
    iam.Role(stack, "NoPass", role_name=NO_PASS, assumed_by=iam.AccountRootPrincipal()).add_to_policy(
        iam.PolicyStatement(actions=["sagemaker:*"], resources=["*"])
    )  # may create training jobs, but not pass them a role
    train = tasks.SageMakerCreateTrainingJob(
        stack,
        "TrainModel",
        training_job_name=sfn.JsonPath.string_at("$.name"),
        role=job_role.without_policy_updates(),  # the task would grant it s3:GetObject and s3:ListBucket on *
        algorithm_specification=tasks.AlgorithmSpecification(
            training_image=tasks.DockerImage.from_registry(
                "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
            ),
            training_input_mode=tasks.InputMode.FILE,
        ),
        input_data_config=[
            tasks.Channel(
                channel_name="train",
                data_source=tasks.DataSource(
                    s3_data_source=tasks.S3DataSource(
                        s3_location=tasks.S3Location.from_json_expression("$.train"),
                        s3_data_type=tasks.S3DataType.S3_PREFIX,
                    )
                ),
            ),
            tasks.Channel(
                channel_name="code",
                data_source=tasks.DataSource(
                    s3_data_source=tasks.S3DataSource(
                        s3_location=tasks.S3Location.from_bucket(data, "code/sourcedir.tar.gz"),
                        s3_data_type=tasks.S3DataType.S3_PREFIX,
                    )
                ),
            ),
        ],
        output_data_config=tasks.OutputDataConfig(
            s3_output_location=tasks.S3Location.from_bucket(data, "jobs"), encryption_key=key
        ),
        resource_config=tasks.ResourceConfig(
            instance_count=1, instance_type=ec2.InstanceType("m5.large"), volume_size=Size.gibibytes(10)
        ),
        stopping_condition=tasks.StoppingCondition(max_runtime=Duration.seconds(60)),
        enable_network_isolation=True,
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
            "mode.$": "$.mode",
            "epochs": "3",
        },
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
    )
    sfn.StateMachine(
        stack,
        "Training",
        definition_body=sfn.DefinitionBody.from_chainable(
            train.next(
                sfn.Pass(
                    stack,
                    "Trained",
                    parameters={"model.$": "$.ModelArtifacts.S3ModelArtifacts", "status.$": "$.TrainingJobStatus"},
                )
            )
        ),
    )

    web = _function(stack, "Web", "web")
    web.add_environment("MODEL", "one")
    live = lambda_.Alias(stack, "WebLive", alias_name="live", version=web.current_version)
    url = live.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
    caller = iam.Role(stack, "UrlCaller", role_name=URL_CALLER, assumed_by=iam.AccountRootPrincipal())
    url.grant_invoke_url(caller)
    iam.Role(stack, "UrlStranger", role_name=URL_STRANGER, assumed_by=iam.AccountRootPrincipal()).add_to_policy(
        iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=["*"])
    )  # may invoke, but not through a URL: no lambda:InvokeFunctionUrl
    web.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)

"""A sagemaker model's training job: the optimized `createTrainingJob.sync` task of its state machine and the role the
job runs with.

The task (`SageMakerCreateTrainingJob`, `integration_pattern=RUN_JOB`) runs the framework image with network
isolation; its name and channels come from the prepare step's state (`$.state.job`: the run's content-addressed
prefix, `channels/<model>/...`, where prepare wrote the train and validation rows, inputs.json and a re-hashed copy
of the source asset as `.../sourcedir.tar.gz`); its hyperparameters are the model's plus script mode's and mlvault's
(`sagemaker_program` mlvault_job.py, `sagemaker_submit_directory` the code channel's tar, `mlvault_entry_point`, and
`mlvault_inputs_sha256` from the state: the job cannot be given another input manifest); its output goes to
`jobs/<model>/` of the model bucket, encrypted with the stage's data key; spot when configured. The job is named
`mlvault-<stage>-<run id>` (mlvault.training.specs.job_name), where a model's run ids begin with its name: the
permissions below allow the model's own job names only.

The training role may do what SageMaker does for such a job and nothing else: list and read the model's channel
prefix, write its output prefix, use the data key for exactly that (through S3, on the model bucket), pull the image
and write its log streams. The state machine's role may start, describe and stop the model's jobs only, pass this
role only to SageMaker, and manage the managed rule `.sync` uses (GUIDE.md section 9).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.model_settings import JOB_VERIFIER_FILE, ModelSettings
from infra.policy.nag import acknowledge
from infra.settings import StageSettings
from mlvault.training.job_entry.source_asset import SOURCE_FILE

CODE_CHANNEL_DIR = "/opt/ml/input/data/code"  # where SageMaker puts the `code` channel's files
SAGEMAKER = "sagemaker.amazonaws.com"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # SageMaker's own: every training job logs there
# The managed EventBridge rule through which Step Functions follows a training job for `.sync`.
SYNC_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
CHANNELS_PREFIX = "channels"
JOBS_PREFIX = "jobs"
# The prepare step's output (mlvault.training.channels): the job's name (mlvault-<stage>-<run id>), each channel's
# S3 URI (`$.state.job.channels.<name>.s3_uri`) and the SHA-256 of the job's input manifest.
STATE_JOB_NAME = "$.state.job.name"
STATE_CHANNELS = "$.state.job.channels"
STATE_INPUTS_SHA256 = "$.state.job.inputs_sha256"
VOLUME_GIB = 30  # the job's ML storage volume: the channels (File mode copies them there) and the model


def job_prefix(settings: StageSettings, model: ModelSettings) -> str:
    """Every training job of the model is named with this prefix (`mlvault-<stage>-<run id>`, run ids `<model>-`)."""
    return f"{settings.prefix}-{model.name}-"


def channel_names(model: ModelSettings) -> tuple[str, ...]:
    assert model.job is not None
    return ("train", *(("validation",) if model.job.validation_fraction > 0 else ()), "mlvault", "code")


class _StateLocation(tasks.S3Location):
    """An S3 location read from the state, granting nothing (CDK's from_json_expression grants s3:GetObject and
    s3:ListBucket on `*` to the job's role)."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self._uri = uri

    def bind(self, _task: Any, *, for_reading: bool | None = None, for_writing: bool | None = None):
        return tasks.S3LocationConfig(uri=self._uri)


class TrainingRole(Construct):
    """The role one model's training jobs run with (least privilege, module docstring)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        model: ModelSettings,
        model_bucket: str,
        data_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        assert model.job is not None
        stack = Stack.of(self)
        partition, region, account = stack.partition, stack.region, stack.account
        jobs = f"arn:{partition}:sagemaker:{region}:{account}:training-job/{job_prefix(settings, model)}*"
        self.jobs_arn = jobs
        self.role = role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                SAGEMAKER,
                conditions={  # confused deputy: only SageMaker, for this model's jobs in this account
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": jobs},
                },
            ),
            description=f"mlvault {settings.stage}: the training jobs of model {model.name}",
        )
        bucket_arn = f"arn:{partition}:s3:::{model_bucket}"
        channels = f"{CHANNELS_PREFIX}/{model.name}/"
        output = f"{JOBS_PREFIX}/{model.name}/"
        statements = [
            # S3Prefix channels: SageMaker lists the prefix, then reads each object
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": f"{channels}*"}},
            ),
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{bucket_arn}/{channels}*"]),
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"{bucket_arn}/{output}*"]),
            # the data key, through S3 and for the model bucket only (S3 Bucket Keys: the bucket is the context)
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[data_key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"s3.{region}.amazonaws.com",
                        "kms:EncryptionContext:aws:s3:arn": bucket_arn,
                    }
                },
            ),
            # the framework image (ECR repositories are named by ARN; the token request has no resource)
            iam.PolicyStatement(
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[model.job.image_repository_arn.replace("arn:aws:", f"arn:{partition}:", 1)],
            ),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            # its own log streams in SageMaker's training log group (streams are named <job name>/...)
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup"],
                resources=[f"arn:{partition}:logs:{region}:{account}:log-group:{TRAINING_LOG_GROUP}"],
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[
                    f"arn:{partition}:logs:{region}:{account}:log-group:{TRAINING_LOG_GROUP}:log-stream:"
                    f"{job_prefix(settings, model)}*"
                ],
            ),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        self._acknowledge(settings, model, model_bucket)

    def _acknowledge(self, settings: StageSettings, model: ModelSettings, model_bucket: str) -> None:
        from infra.constructs.storage import bucket_arn_ack
        from infra.policy.spec import BucketRole

        prefix = job_prefix(settings, model)
        reasons = {
            "Resource::"
            + bucket_arn_ack(settings, BucketRole.MODEL, f"/{CHANNELS_PREFIX}/{model.name}/*"): "The job reads the "
            "run's channel objects; they are content-addressed per run under the model's channel prefix, which is "
            "all an IAM policy can name before the run exists.",
            "Resource::"
            + bucket_arn_ack(settings, BucketRole.MODEL, f"/{JOBS_PREFIX}/{model.name}/*"): "SageMaker writes the "
            "job's output under <output path>/<job name>/: the model's output prefix, one folder per job.",
            "Resource::*": "ecr:GetAuthorizationToken has no resource-level permissions; the image pull itself is "
            "scoped to the model's image repository.",
            f"Resource::arn:aws:logs:{settings.region}:<AWS::AccountId>:log-group:{TRAINING_LOG_GROUP}:"
            f"log-stream:{prefix}*": "SageMaker names a job's log streams <job name>/<host>-<time>: the model's jobs "
            "share its job-name prefix.",
        }
        for finding, reason in reasons.items():
            acknowledge(self.role, f"AwsSolutions-IAM5[{finding}]", reason)
        acknowledge(
            self.role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            f"The policy is attached to model {model.name}'s training role only and lists exact actions and "
            "resources; a customer-managed policy would grant the same.",
        )


class TrainingJob(tasks.SageMakerCreateTrainingJob):
    """`SageMakerCreateTrainingJob` (RUN_JOB) with the state machine's permissions scoped to the model's jobs and
    spot training when configured (the CDK task has neither: its job-name resource is `*` for a name from the
    state, and it renders no EnableManagedSpotTraining)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        model: ModelSettings,
        role: TrainingRole,
        model_bucket: str,
        data_key: kms.IKey,
    ) -> None:
        job = model.job
        assert job is not None
        self._jobs_arn = role.jobs_arn
        self._spot = job.spot
        self._max_wait = job.max_wait_seconds
        self._output_key_arn = data_key.key_arn
        hyperparameters: dict[str, Any] = {
            **dict(job.hyperparameters),
            "sagemaker_program": JOB_VERIFIER_FILE,
            "sagemaker_submit_directory": f"{CODE_CHANNEL_DIR}/{SOURCE_FILE}",  # network isolation: a channel
            "mlvault_entry_point": job.entry_point,
            "mlvault_inputs_sha256": sfn.JsonPath.string_at(STATE_INPUTS_SHA256),
        }
        super().__init__(
            scope,
            construct_id,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.string_at(STATE_JOB_NAME),
            role=role.role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(job.image),
                training_input_mode=tasks.InputMode.FILE,
            ),
            enable_network_isolation=True,
            input_data_config=[
                tasks.Channel(
                    channel_name=name,
                    data_source=tasks.DataSource(
                        s3_data_source=tasks.S3DataSource(
                            s3_data_type=tasks.S3DataType.S3_PREFIX,
                            s3_location=_StateLocation(sfn.JsonPath.string_at(f"{STATE_CHANNELS}.{name}.s3_uri")),
                        )
                    ),
                )
                for name in channel_names(model)
            ],
            # KmsKeyId is added by to_state_json: given as the task's encryption_key, CDK would grant the role
            # kms:Encrypt, kms:ReEncrypt* and kms:GenerateDataKey* on the key, outside S3
            output_data_config=tasks.OutputDataConfig(
                s3_output_location=_StateLocation(f"s3://{model_bucket}/{JOBS_PREFIX}/{model.name}/"),
            ),
            resource_config=tasks.ResourceConfig(
                instance_count=job.instance_count,
                instance_type=ec2.InstanceType(job.instance_type.removeprefix("ml.")),  # CDK adds "ml."
                volume_size=Size.gibibytes(VOLUME_GIB),
            ),
            stopping_condition=tasks.StoppingCondition(max_runtime=Duration.seconds(job.max_runtime_seconds)),
            hyperparameters=hyperparameters,
            result_selector={  # what collect reads, in SageMaker's own field names
                "TrainingJobName": sfn.JsonPath.string_at("$.TrainingJobName"),
                "TrainingJobArn": sfn.JsonPath.string_at("$.TrainingJobArn"),
                "TrainingJobStatus": sfn.JsonPath.string_at("$.TrainingJobStatus"),
                "ModelArtifacts": {"S3ModelArtifacts": sfn.JsonPath.string_at("$.ModelArtifacts.S3ModelArtifacts")},
            },
            result_path="$.training_job",
        )

    @property
    def _task_policies(self) -> list[iam.PolicyStatement]:
        """CDK's statements, the training-job ones scoped to the model's job-name prefix; AddTags dropped (the task
        sets no tags)."""
        scoped = []
        for statement in super()._task_policies or []:
            rendered = statement.to_statement_json()
            actions = rendered["Action"] if isinstance(rendered["Action"], list) else [rendered["Action"]]
            if "sagemaker:AddTags" in actions:
                continue
            if "sagemaker:CreateTrainingJob" in actions:
                statement = iam.PolicyStatement(actions=actions, resources=[self._jobs_arn])
            scoped.append(statement)
        return scoped

    def to_state_json(self, top_level_query_language: sfn.QueryLanguage | None = None) -> dict[str, Any]:
        state = dict(super().to_state_json(top_level_query_language))
        parameters = dict(state["Parameters"])
        parameters["OutputDataConfig"] = {**dict(parameters["OutputDataConfig"]), "KmsKeyId": self._output_key_arn}
        if self._spot:
            parameters["EnableManagedSpotTraining"] = True
            parameters["StoppingCondition"] = {
                **dict(parameters["StoppingCondition"]),
                "MaxWaitTimeInSeconds": self._max_wait,
            }
        state["Parameters"] = parameters
        return state

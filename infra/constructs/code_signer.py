"""The signer: the custom resource provider that signs every other function's code and every layer with the
stage's AWS Signer profile (lambdas/signer/handler.py; the protocol is in its docstring).

Why the signer itself runs unsigned code. Lambda's code signing needs a signing job's output, and the only thing
that produces one during `cdk deploy` is this function: it cannot sign itself before it exists. It is the one
bootstrapping exception to code signing, and it is kept small and isolated instead:

- its own stack (mlvault-<stage>-signing), deployed before every stack with functions, with no other function;
- standard library and boto3 only, no layers: nothing but lambdas/signer/handler.py runs in it;
- its own role, least privilege: read the CDK bootstrap assets bucket's objects, read and write the signed-code
  bucket under unsigned/ and signed/ only, encrypt there with the data key (through S3, for that bucket only),
  start signing jobs with the stage's profile and describe them, read the public key of the keys it pins;
- marked in CloudFormation metadata (CODE_SIGNING_EXCEPTION_METADATA_KEY): MLV-LAMBDA-CODE-SIGNING exempts exactly
  one marked function, alone in its stack, without layers, the provider of every signed-code resource, and
  nothing else.

What that leaves trusted is written in the README ("Security: what an insider with deploy rights can and cannot
do"): whoever may invoke the signer, or deploy its stack, can have code signed.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_signer as signer
from constructs import Construct

from infra.constructs.functions import (
    ASSET_EXCLUDES,
    LAMBDAS_DIR,
    RUNTIME,
    AssetMissingError,
    acknowledge_function,
    function_dlq,
    function_role,
    stage_log_group,
)
from infra.constructs.storage import bucket_arn_ack
from infra.policy.nag import acknowledge
from infra.policy.spec import (
    CODE_SIGNING_EXCEPTION_METADATA_KEY,
    CODE_SIGNING_EXCEPTION_SIGNER,
    SIGNED_PREFIX,
    STAGING_PREFIX,
    BucketRole,
)
from infra.settings import StageSettings

NAME = "signer"
# A signing job takes seconds; the signer answers CloudFormation (FAILED on a timeout) before Lambda's 15 minutes.
TIMEOUT = Duration.minutes(15)
MEMORY_MB = 1024


def assets_bucket_name(scope: Construct, qualifier: str) -> str:
    """The CDK bootstrap assets bucket (versioned) where `cdk deploy` publishes the file assets."""
    stack = Stack.of(scope)
    return f"cdk-{qualifier}-assets-{stack.account}-{stack.region}"


class CodeSigner(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        data_key: kms.IKey,
        profile: signer.SigningProfile,
        signed_bucket: str,
        pinned_keys: Sequence[kms.IKey],
    ) -> None:
        super().__init__(scope, construct_id)
        source = LAMBDAS_DIR / NAME
        if not (source / "handler.py").is_file():
            raise AssetMissingError(f"no handler at {source / 'handler.py'}")
        stack = Stack.of(self)
        self.log_group = stage_log_group(self, "Logs", settings=settings, data_key=data_key, name=NAME)
        self.role = function_role(self, settings=settings, name=NAME, log_group=self.log_group)
        self.dlq = function_dlq(self, data_key=data_key, name=NAME)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Signs Lambda code and layers with the stage's Signer profile (the one unsigned function)",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            # Unsigned, by necessity: see the module docstring. Standard library and boto3 only, no layers.
            code=lambda_.Code.from_asset(str(source), exclude=ASSET_EXCLUDES),
            role=self.role,
            dead_letter_queue=self.dlq,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=self.log_group,
            timeout=TIMEOUT,
            memory_size=MEMORY_MB,
            reserved_concurrent_executions=settings.reserved_concurrency,
        )
        self.function.node.default_child.add_metadata(
            CODE_SIGNING_EXCEPTION_METADATA_KEY, CODE_SIGNING_EXCEPTION_SIGNER
        )
        acknowledge_function(self.function, settings)

        partition = stack.partition
        assets = assets_bucket_name(self, settings.cdk_qualifier)
        self._allow(["s3:GetObject", "s3:GetObjectVersion"], [f"arn:{partition}:s3:::{assets}/*"])
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::cdk-{settings.cdk_qualifier}-assets-"
            f"<AWS::AccountId>-{settings.region}/*]",
            "The signer reads the assets cdk deploy published: content-addressed keys at the bucket's root.",
        )
        signed_arn = f"arn:{partition}:s3:::{signed_bucket}"
        self._allow(
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            [f"{signed_arn}/{STAGING_PREFIX}*", f"{signed_arn}/{SIGNED_PREFIX}*"],
        )
        for prefix, what in ((STAGING_PREFIX, "the zips it stages for signing"), (SIGNED_PREFIX, "signed code")):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(settings, BucketRole.SIGNED_CODE, f'/{prefix}*')}]",
                f"The signer writes {what} under {prefix}, one key per asset and signing job.",
            )
        # The signed-code bucket is SSE-KMS with the data key (bucket keys): through S3, for that bucket only.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[data_key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"s3.{stack.region}.amazonaws.com",
                        "kms:EncryptionContext:aws:s3:arn": signed_arn,
                    }
                },
            )
        )
        self._allow(["signer:StartSigningJob"], [profile.signing_profile_arn])
        jobs = f"arn:{partition}:signer:{stack.region}:{stack.account}:/signing-jobs/*"
        self._allow(["signer:DescribeSigningJob"], [jobs])
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:aws:signer:{settings.region}:<AWS::AccountId>:/signing-jobs/*]",
            "A signing job's id is known only once the signer started it; it describes its own jobs.",
        )
        if pinned_keys:
            self._allow(["kms:GetPublicKey"], [k.key_arn for k in pinned_keys])

    def _allow(self, actions: list[str], resources: list[str]) -> None:
        self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))

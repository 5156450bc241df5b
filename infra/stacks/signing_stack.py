"""The signing stack (mlvault-<stage>-signing): the stage's AWS Signer profile, the signed-code bucket and the
signer that every other stack calls, through a custom resource per asset, to have its functions' code and layers
signed (infra/constructs/signed_code.py). Deployed after the storage stack (it pins the model-signing key and
encrypts with the data key) and before every stack with functions; it holds the one function that runs unsigned
code, the signer itself (infra/constructs/code_signer.py says why)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_signer as signer
from constructs import Construct

from infra.constructs.code_signer import CodeSigner
from infra.constructs.parameters import publish
from infra.constructs.signed_code import SigningProvider
from infra.constructs.storage import bucket_name, role_arn, signed_code_bucket
from infra.policy.spec import BucketRole
from infra.settings import StageSettings


class SigningStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        data_key: kms.IKey,
        pinned_keys: Sequence[kms.IKey],
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        # One profile per stage: the only publisher the stage's code signing configs trust.
        self.profile = signer.SigningProfile(self, "SigningProfile", platform=signer.Platform.AWS_LAMBDA_SHA384_ECDSA)
        signed_name = bucket_name(self, settings, BucketRole.SIGNED_CODE)
        self.bucket = signed_code_bucket(
            self,
            "SignedCodeBucket",
            bucket_name=signed_name,
            key=data_key,
            logs=s3.Bucket.from_bucket_name(self, "AccessLogs", bucket_name(self, settings, BucketRole.ACCESS_LOGS)),
            break_glass_arn=role_arn(self, settings.break_glass_role_name),
        )
        Annotations.of(self.bucket).acknowledge_warning(
            "@aws-cdk/aws-s3:accessLogsPolicyNotAdded",
            "The access-log bucket's policy (storage stack) lets this bucket deliver under signed-code/, by name.",
        )
        self.signer = CodeSigner(
            self,
            "Signer",
            settings=settings,
            data_key=data_key,
            profile=self.profile,
            signed_bucket=signed_name,
            pinned_keys=pinned_keys,
        )
        publish(
            self,
            settings,
            {
                "signed-code-bucket": self.bucket.bucket_name,
                "signing-profile": self.profile.signing_profile_name,
                "signer-function": self.signer.function.function_name,
            },
        )

    def provider(self, consumer: Construct) -> SigningProvider:
        """The signing provider as a stack with functions uses it (the bucket by its fixed name in that stack)."""
        return SigningProvider(
            function=self.signer.function,
            profile=self.profile,
            bucket_name=bucket_name(consumer, self.settings, BucketRole.SIGNED_CODE),
        )

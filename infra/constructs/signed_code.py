"""Signed Lambda code: every function's code and every layer reach Lambda only as an object that a signing job of
the stage's AWS Signer profile produced, so that a code signing config in `Enforce` accepts them.

CDK has no built-in for this (aws-cdk issue 29474; RFC 305 closed). The pattern: the asset is staged as usual
(`cdk deploy` publishes it, versioned, to the bootstrap assets bucket), a custom resource of the signing stack's
signer (`Custom::MlvaultSignedCode`, infra/constructs/code_signer.py) signs that exact version with `StartSigningJob`,
and the function or layer is deployed from the signed object (`Code.from_bucket` with the resource's Bucket, Key
and Version). `cdk deploy` stays the one command.

The signer can also write files into the zip before it is signed (`Bundle`: path -> JSON document, whose values
may be deploy-time tokens such as a key's ARN) and pin KMS public keys into them (`PinKeys`): that is how trust
anchors travel inside the signed code (infra/constructs/trust_anchors.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import CustomResource, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from aws_cdk import aws_signer as signer
from constructs import Construct

from infra.policy.spec import SIGNED_CODE_RESOURCE_TYPE, SIGNED_PREFIX


@dataclass(frozen=True)
class SigningProvider:
    """What a stack needs from the signing stack to have its assets signed: the signer function (the custom
    resource provider), the stage's signing profile, and the signed-code bucket (its fixed name in the consuming
    stack's account and region: infra.constructs.storage.bucket_name)."""

    function: lambda_.IFunction
    profile: signer.ISigningProfile
    bucket_name: str

    def code_signing_config(
        self, scope: Construct, construct_id: str, *, policy: str, description: str
    ) -> lambda_.CodeSigningConfig:
        """A code signing config that trusts the stage's profile only, with the stage's policy on untrusted code."""
        return lambda_.CodeSigningConfig(
            scope,
            construct_id,
            signing_profiles=[self.profile],
            untrusted_artifact_on_deployment=lambda_.UntrustedArtifactOnDeployment(policy.upper()),
            description=description,
        )


class SignedCode(Construct):
    """One asset (a function's code or a layer's content), signed by the stage's signer: `.code` is what the
    function or layer is deployed from."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        provider: SigningProvider,
        asset: Mapping[str, Any],
        bundle: Mapping[str, Mapping[str, Any]] | None = None,
        pin_keys: Mapping[str, str] | None = None,
    ) -> None:
        """`asset`: the options of the staged asset (`aws_s3_assets.Asset`: path, exclude, bundling...). `bundle`:
        files the signer writes into the zip before signing (path -> JSON document; values may be tokens).
        `pin_keys`: for each entry name -> KMS key ARN, the signer adds the key's public key SHA-256 to the bundled
        document entry of that name (which must carry the same ARN)."""
        super().__init__(scope, construct_id)
        self.asset = assets.Asset(self, "Source", **asset)
        properties: dict[str, Any] = {
            "SourceBucket": self.asset.s3_bucket_name,
            "SourceKey": self.asset.s3_object_key,
            "ProfileName": provider.profile.signing_profile_name,
            "DestinationBucket": provider.bucket_name,
            # one folder per stack and asset content; each signing job writes its own object in it
            "DestinationPrefix": f"{SIGNED_PREFIX}{Stack.of(self).stack_name}/{self.asset.asset_hash}/",
        }
        if bundle:
            properties["Bundle"] = {path: dict(document) for path, document in bundle.items()}
        if pin_keys:
            properties["PinKeys"] = dict(pin_keys)
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.function.function_arn,
            resource_type=SIGNED_CODE_RESOURCE_TYPE,
            properties=properties,
        )
        bucket = s3.Bucket.from_bucket_name(self, "Bucket", self.resource.get_att_string("Bucket"))
        self.code = lambda_.Code.from_bucket(
            bucket, self.resource.get_att_string("Key"), self.resource.get_att_string("Version")
        )

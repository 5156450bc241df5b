"""The review function: a human's decision on a held upload (mlvault review approve|reject) releases the exact held
bytes into the lake or rejects them."""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.constructs.ingest_resources import IngestResources
from infra.policy.spec import BucketRole


class Reviewer(Concern):
    def __init__(
        self, scope: Construct, construct_id: str, *, platform: FunctionPlatform, ingest: IngestResources
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = fn = SecureFunction(
            self,
            "Review",
            platform=platform,
            name="review",
            description="A human's decision on a held upload: releases the exact held bytes to the lake, or rejects",
            environment=ingest.environment,
            timeout=Duration.minutes(5),
        )
        fn.allow_objects(
            ["s3:GetObject", "s3:GetObjectVersion"],
            BucketRole.QUARANTINE,
            {"/held/*": "A release copies the held version of the upload under review; keys are not known in advance."},
        )
        fn.allow_objects(
            ["s3:GetObject", "s3:PutObject"],
            BucketRole.LAKE,
            {"/datasets/*": "Released files land under the content-addressed key an acceptance would have used."},
        )
        ingest.allow_verdicts(fn)

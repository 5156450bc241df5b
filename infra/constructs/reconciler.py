"""The reconciler: on a schedule, finds ingest versions without a verdict after the deadline and re-drives them
through the queue, or quarantines them; publishes the Unaccounted metric."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform
from infra.constructs.ingest_resources import IngestResources
from infra.constructs.verifier import UPLOAD_ACTIONS, UPLOADS, verifying_function
from infra.policy.nag import acknowledge
from infra.policy.spec import BucketRole
from mlvault.wiring import Env

EVERY = Duration.minutes(15)
DEADLINE_SECONDS = 900
MAX_REDRIVES = 3


class Reconciler(Concern):
    def __init__(
        self, scope: Construct, construct_id: str, *, platform: FunctionPlatform, ingest: IngestResources
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = verifying_function(
            self,
            "Reconcile",
            platform=platform,
            ingest=ingest,
            name="reconcile",
            description="Finds ingest versions without a verdict after the deadline; re-drives or quarantines them",
            environment={
                Env.RECONCILE_DEADLINE_SECONDS: str(DEADLINE_SECONDS),
                Env.RECONCILE_MAX_REDRIVES: str(MAX_REDRIVES),
            },
        )
        fn = self.function
        events.Rule(
            self,
            "ReconcileSchedule",
            schedule=events.Schedule.rate(EVERY),
            targets=[targets.LambdaFunction(fn.function)],
        )
        fn.allow(["s3:ListBucketVersions"], [f"arn:{Stack.of(self).partition}:s3:::{ingest.ingest_bucket}"])
        fn.allow_objects(
            UPLOAD_ACTIONS,
            BucketRole.INGEST,
            {UPLOADS: "The reconciler looks at every upload under the producer prefixes."},
        )
        fn.allow_objects(
            ["s3:PutObject", "s3:PutObjectTagging"],
            BucketRole.QUARANTINE,
            {
                "/rejected/*": "Versions that never reached a verdict are quarantined under "
                "rejected/<ingest key>/<version>.",
                "/held/*": "A re-driven verification may hold an upload under held/<ingest key>/<version>.",
            },
        )
        ingest.allow_verdicts(fn)
        # the outbox sweep: verdicts whose announcement is still pending after the grace period
        fn.allow(["dynamodb:Scan"], [ingest.ledger.table_arn])
        fn.allow(["sqs:SendMessage"], [ingest.queue.queue_arn])
        fn.allow(["cloudwatch:PutMetricData"], ["*"])
        acknowledge(
            fn.role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource-level permissions (the Unaccounted and "
            "Unannounced metrics).",
        )

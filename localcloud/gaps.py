"""Where moto lacks an AWS behaviour mlvault relies on, the gap is closed once (GUIDE.md section 6).

This is the index: each gap is described in full (what moto does, what AWS does, how the local cloud closes
it) in the module named, the way moto splits a backend by service. `install` applies them all to the moto
backends of this process (the local cloud's server). tests/localcloud covers each.

1. Lambda execution: handlers run from their assets (runtime.py), `InvocationType=Event` asynchronously.
   services/awslambda.py
2. S3 notifications: delivered after the object is complete, with versionId and sequencer; destinations
   validated against the queue's policy; delivery failures recorded. services/s3.py
3. Bucket policies: every S3 request checked against the Deny statements with the precise action, principal
   and condition keys (evaluated by iam_policy.py). services/s3.py
4. SQS event source mappings: moto's delivery inside SendMessage detached; the poller (pollers.py) reads
   batches and honours ReportBatchItemFailures. services/sqs.py
5. EventBridge targets and schedules: Lambda and Step Functions targets; schedule rules get only their
   `Scheduled Event`s, emitted for `rate(...)`. services/eventbridge.py
6. CloudWatch alarms: each state change puts a `CloudWatch Alarm State Change` event on the default bus.
   services/cloudwatch.py
7. Step Functions: executions run, their Lambda tasks call this server. services/stepfunctions.py
8. Object Lock: CopyObject into a bucket with default retention needs no checksum header. services/s3.py
9. Server access logging: PutBucketLogging applied once the rest of the stack (the log target's policy)
   exists. resources/cfn_s3.py (the provisioner)
10. Lambda versions and aliases: routing weights applied, `Qualifier=` honoured, `ExecutedVersion` returned,
   versions run with their published environment, invalid routing refused. services/awslambda.py
11. KMS Sign/Verify with MessageType=DIGEST: the digest used as prehashed; Verify of a bad signature fails
   with KMSInvalidSignatureException. services/kms.py
12. Embedded Metric Format: metrics of the lines functions print extracted into CloudWatch (emf.py);
   GetMetricStatistics matches the exact dimension set (services/cloudwatch.py).
13. Alarm evaluation: metric alarms evaluated from their data about every second, time scaled by
   `alarm_scale`. alarms.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localcloud.services import awslambda, cloudwatch, eventbridge, kms, s3, sqs, stepfunctions

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

# Each patches methods of its own service only, so the order is free; the numbered order above, by module.
SERVICES = (awslambda, s3, sqs, eventbridge, cloudwatch, stepfunctions, kms)


def install(cloud: LocalCloud) -> None:
    for service in SERVICES:
        service.install(cloud)

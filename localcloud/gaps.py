"""Where moto lacks an AWS behaviour mlvault relies on, the gap is closed once (GUIDE.md section 6).

This is the index: each gap is described in full (what moto does, what AWS does, how the local cloud closes
it) in the module named, the way moto splits a backend by service. `install` applies them all to the moto
backends of this process (the local cloud's server). tests/localcloud covers each.

1. Lambda execution: handlers run in local workers (runtime.py), `InvocationType=Event` asynchronously, a
   payload that is not JSON refused with InvalidRequestContentException. services/awslambda.py
2. S3 notifications: delivered after the object is complete, with versionId, sequencer and configurationId, to
   queues, functions and topics; destinations validated against the queue's policy; deliveries and their
   failures recorded, never failing the PUT. services/s3.py
3. S3 authorization: every S3 request authorized (gap 14) as its precise IAM actions (services/s3_requests.py),
   with the bucket policy's principals and conditions, and SSE-KMS keys used on the caller's behalf.
   services/s3.py
4. SQS event source mappings: moto's delivery inside SendMessage detached; the poller (pollers.py) reads
   batches and honours ReportBatchItemFailures. services/sqs.py
5. EventBridge targets and schedules: Lambda and Step Functions targets, delivered only where the function's
   policy or the target's role allows it; schedule rules get only their `Scheduled Event`s, emitted for
   `rate(...)`; rate expressions AWS refuses are refused. services/eventbridge.py
6. CloudWatch alarms: each state change puts a `CloudWatch Alarm State Change` event on the default bus.
   services/cloudwatch.py
7. Step Functions: executions run, their tasks sign with the state machine's role, Wait states scaled by
   `alarm_scale`. services/stepfunctions.py
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
14. IAM: every request authorized as AWS authorizes same-account requests: explicit Deny wins, an Allow of the
   caller's identity policies or of the resource's policy needed, key policies and trust policies required;
   unknown access keys refused; each service's own AccessDenied error. authz.py (evaluation: iam_policy.py,
   request to actions: iam_actions.py)
15. Object Lock and metadata: COMPLIANCE retention never shortened, removed or made GOVERNANCE, GOVERNANCE only
   with the bypass header, versioning of an Object Lock bucket never suspended, user metadata over 2 KB
   refused. services/s3_lock.py
16. KMS key state: cryptographic operations on a Disabled key or a key PendingDeletion refused; key state changes
   take the key's ARN. services/kms.py
17. EventBridge PutEvents: entries with an `aws.` source refused (NotAuthorizedForSourceException), per entry.
   services/eventbridge.py
18. CloudFormation custom resources: created by invoking their provider function with the CloudFormation
   request, its response PUT to a presigned ResponseURL of this server. resources/cfn_custom.py
19. AWS Signer signing jobs: StartSigningJob, DescribeSigningJob, ListSigningJobs, RevokeSignature; the CDK
   assets bucket versioned (provision.py). services/signing_jobs.py
20. Lambda code signing: code signing configs enforced on CreateFunction, UpdateFunctionCode, PublishVersion
   and added layers (Enforce refuses, Warn records a warning; a broken signature is always refused).
   services/lambda_codesigning.py
21. Deployed code: functions and layers run from the code they were created, updated or published with (S3
   object versions honoured, versions keep their code), extracted under the state directory.
   services/lambda_code.py (runtime side: runtime.py)
22. CloudWatch alarm history: DescribeAlarmHistory answers the StateUpdate items of each alarm's changes of
   state (moto records them, without the API). services/cloudwatch.py
23. SageMaker training jobs: CreateTrainingJob validated as SageMaker validates it and run (channels downloaded
   from local S3 with the job's role, the script-mode toolkit in a job process of its own, MaxRuntimeInSeconds,
   model.tar.gz uploaded with the role and the output key), DescribeTrainingJob, StopTrainingJob,
   ListTrainingJobs. services/sagemaker_jobs.py (validation: services/sagemaker_validation.py; the platform:
   sagemaker_runner.py; the container: sagemaker_toolkit.py)
24. Step Functions `sagemaker:createTrainingJob(.sync)`: the job created with the task's role, waited for, its
   DescribeTrainingJob as the output, States.TaskFailed when it fails or stops. services/sfn_sagemaker.py
25. Lambda function URLs: URL configs on a function or an alias (Qualifier), served on the local endpoint,
   AWS_IAM requests' SigV4 signatures verified (sigv4_verify.py) and authorized (lambda:InvokeFunctionUrl and
   lambda:InvokeFunction), the alias's weights applied, payload format 2.0 in and out.
   services/function_urls.py
26. What a function can import: Lambda's runtime has the standard library and boto3 (with botocore, s3transfer,
   jmespath, dateutil, urllib3, six), nothing else; the local cloud's venv has everything. A function imports a
   third-party package only if one of its third-party layers holds it (their published manifests list their
   top-level packages) or its code or first-party layers do; any other is ModuleNotFoundError, as on Lambda.
   services/lambda_code.py (the worker's import guard: worker.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from localcloud import authz
from localcloud.services import (
    awslambda,
    cloudwatch,
    eventbridge,
    function_urls,
    kms,
    lambda_code,
    lambda_codesigning,
    s3,
    s3_lock,
    sagemaker_jobs,
    sfn_sagemaker,
    signing_jobs,
    sqs,
    stepfunctions,
)

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

# Each patches methods of its own service only, so the order is free; the numbered order above, by module.
SERVICES = (
    awslambda,
    s3,
    sqs,
    eventbridge,
    cloudwatch,
    stepfunctions,
    kms,
    authz,
    s3_lock,
    signing_jobs,
    lambda_codesigning,
    lambda_code,
    sagemaker_jobs,
    sfn_sagemaker,
    function_urls,
)


def install(cloud: LocalCloud) -> None:
    for service in SERVICES:
        service.install(cloud)

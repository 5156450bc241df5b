"""Where moto lacks an AWS behaviour mlvault relies on, the gap is closed here, once (GUIDE.md section 6).

Each gap below names what moto does, what AWS does, and how the local cloud closes it. `install` applies
them all to the moto backends of this process (the local cloud's server). tests/localcloud covers each.

1. Lambda execution. moto runs handlers in Docker. Here `LambdaFunction.invoke` / `_invoke_lambda` run the
   real handler from its asset (runtime.py); `InvocationType=Event` is asynchronous, as in AWS.
2. S3 notifications. moto sends them inside PutObject before metadata, checksum and tags are stored, without
   versionId or sequencer, and swallows delivery errors; it accepts destinations S3 could not validate.
   Here events are buffered per request and delivered after the object is complete, with versionId, sequencer
   and URL-encoded key; a queue destination whose policy does not let S3 send fails the configuration, as AWS's
   destination validation does; delivery failures are recorded in the local cloud's event log.
3. Bucket policies. moto treats conditional Deny statements as unconditional, ignores principals and checks only
   Get/Put/Delete object. Here every S3 request is checked against the bucket's Deny statements with the
   precise action, the caller's principal and the request's condition keys (policy.py); moto's own check is off.
   `aws:SecureTransport` is true: the local cloud serves plain HTTP on loopback only, in place of TLS.
4. SQS event source mappings. moto invokes the function inside SendMessage, one message per call, ignoring
   ReportBatchItemFailures. Here moto's delivery is detached and the local cloud's poller (pollers.py) reads
   batches of BatchSize and deletes only what the function reports as processed.
5. EventBridge targets and schedules. moto raises NotImplementedError for Lambda and Step Functions targets,
   matches every event to a schedule rule (it has no pattern) and never runs schedules. Here Lambda targets are
   invoked asynchronously and Step Functions targets start a named execution (other targets go to moto);
   schedule rules receive only their `Scheduled Event`s, which the local cloud emits for `rate(...)`
   expressions (`cron(...)` fails provisioning loudly).
6. CloudWatch alarms. moto's state changes emit nothing. Here each change puts a `CloudWatch Alarm State
   Change` event on the default bus, shaped as AWS sends it.
7. Step Functions. moto only executes definitions when configured to, and its Lambda tasks call
   localhost:MOTO_PORT. Here execution is on and MOTO_PORT is this server's port.
8. Object Lock. moto refuses CopyObject into a bucket with default retention unless the request carries a
   Content-MD5 or `x-amz-sdk-checksum-algorithm` header, which AWS does not require of a copy (boto3 sends
   none). Here a copy satisfies the check, as in AWS.
9. Server access logging. moto refuses PutBucketLogging unless the target bucket's policy already grants the
   logging service, while CloudFormation (and CDK) create the target's policy after the source buckets, since
   the policy names them. Here (provision.py) logging configurations are applied once the rest of the stack
   exists. (moto delivers no access logs either way.)
10. Lambda versions and aliases. moto stores an alias's RoutingConfig but never applies it: an alias always
   runs its FunctionVersion. Its Invoke API reads the qualifier from a lowercase `qualifier` parameter, so
   `Qualifier=` is ignored (and a `qualifier` key of the payload is taken instead); it returns no
   ExecutedVersion; it accepts routing configurations AWS refuses; it publishes a new version without a change
   once the first publish followed an update. Here every invocation of an alias (`fn:alias`, the alias ARN or
   `Qualifier=alias`, by Invoke and by EventBridge and S3 targets) draws once: below the additional version's
   weight it runs that version, otherwise the alias's FunctionVersion. Set MLVAULT_LOCAL_ROUTING_SEED in the
   local cloud's environment to make the draws reproducible. `Qualifier=` is the same as `fn:qualifier` (both,
   differing, are refused as AWS does); each version runs with the environment snapshotted when it was
   published, as its own workers (runtime.py) with AWS_LAMBDA_FUNCTION_VERSION set; the response carries
   `X-Amz-Executed-Version` (`ExecutedVersion` in boto3; `$LATEST` unqualified). CreateAlias/UpdateAlias
   refuse what AWS refuses: more than one additional version, weights outside [0, 1], a non-numeric,
   missing or primary version as the additional one, $LATEST as the primary of a weighted alias, versions of
   different execution roles. (Code is always the function's synthesized asset: UpdateFunctionCode does not
   reach the local runtime, so versions differ by configuration only.)
11. KMS Sign and Verify with MessageType=DIGEST. moto ignores MessageType and hashes the digest again, so the
   signature is over sha256(digest), which verifies against no one's view of the original message. Here a
   DIGEST message is used as the prehashed value (`Prehashed(SHA-256/384/512)` by the algorithm, for ECC and
   RSA keys), its length must be the algorithm's digest size (ValidationException otherwise, as in AWS), and
   Verify with DIGEST checks the same way: a DIGEST signature verifies over the original message anywhere.
   moto's Verify also answers SignatureValid=false for a bad signature, where AWS fails the request with
   KMSInvalidSignatureException: here it fails, as in AWS (for RAW and DIGEST).
12. Embedded Metric Format. In AWS, CloudWatch Logs extracts the metrics of every log line in EMF (a JSON
   object with `_aws.Timestamp` in ms and `_aws.CloudWatchMetrics` directives: Namespace, Dimensions, Metrics;
   values, possibly lists, and dimension values as top-level keys), as aws-lambda-powertools Metrics prints
   them; moto has no such path. Here every line a function prints that carries `"_aws"` is parsed (runtime.py
   hands it to `put_emf`): each value of each metric is put into moto's CloudWatch once per dimension set,
   timestamped by `_aws.Timestamp`, with its Unit (`put_metric_data` semantics); a document AWS would not
   extract (no numeric Timestamp, a missing or non-string dimension value, a non-numeric value) extracts
   nothing and is recorded as `emf-rejected` in the event log (`emf-metrics` otherwise). moto's
   GetMetricStatistics matched dimensions as a subset (asking for {Service} also summed {Service, Stage});
   AWS matches the exact dimension set, each set being its own metric: here it does.
13. Alarm evaluation. moto stores metric alarms and never evaluates them. Here `AlarmEvaluator` (run by the
   local cloud on a thread, about every second) evaluates each single-metric alarm over its last
   EvaluationPeriods complete periods of data put by PutMetricData or EMF (Namespace, MetricName, the exact
   Dimensions, Unit if set; Statistic Average, Sum, Maximum, Minimum or SampleCount; the four
   Greater/Less(OrEqual)Threshold comparisons): ALARM when at least DatapointsToAlarm (default
   EvaluationPeriods) periods breach. TreatMissingData: `breaching`/`notBreaching` count a period without data
   as breaching/not; `missing` (the default) and `ignore` judge the periods with data, needing
   min(DatapointsToAlarm, periods with data) breaching ones (AWS's reaching back for older datapoints, in
   short); with no data at all `missing` gives INSUFFICIENT_DATA and `ignore` keeps the state. The state
   changes through `Alarm.update_state`, so gap 6 emits the event with the previous and new state. Time is
   scaled for local runs: with `alarm_scale` s (LocalCloud / control.up `alarm_scale`, server
   `--alarm-scale`; unset, it is the `schedule_scale`), a period of P seconds lasts P / s seconds of wall
   time and the datapoints (timestamped in wall time) are bucketed by floor(epoch seconds / (P / s)); the
   window is the EvaluationPeriods buckets before the current, unfinished one.
   Differences from AWS, so that tests and demos may still force states with SetAlarmState: the evaluator
   changes an alarm only when its own verdict changes (new data, or data leaving the window), so a state set
   by hand stands until the metric says something new, where AWS reverts it at the next evaluation; an
   alarm's first verdict is taken silently unless it is ALARM (moto creates alarms in OK, AWS in
   INSUFFICIENT_DATA, and nobody acts on a first OK or INSUFFICIENT_DATA); an ALARM first verdict changes the
   state with its event. Not evaluated (recorded once as `alarm-not-evaluated`): metric math alarms
   (Metrics), percentiles (ExtendedStatistic), anomaly detection comparisons; metrics moto derives from
   other services (none for Lambda) are not read.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import math
import operator
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote_plus, urlparse

from localcloud.policy import Request, allowing_statement, denying_statement

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

_state = threading.local()
_sequencer = itertools.count(1)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
ROUTING_SEED = "MLVAULT_LOCAL_ROUTING_SEED"
_routing = random.Random()  # noqa: S311 - splits traffic between versions; nothing secret depends on it


def install(cloud: LocalCloud) -> None:
    _lambda(cloud)
    _lambda_versions()
    _s3(cloud)
    _sqs_event_sources()
    _eventbridge(cloud)
    _cloudwatch(cloud)
    _stepfunctions(cloud)
    _kms()
    _cloudwatch_metrics()


# --- 1. Lambda ------------------------------------------------------------------------------------------


def _lambda(cloud: LocalCloud) -> None:
    from moto.awslambda.models import LambdaFunction

    def invoke(self: Any, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
        event = json.loads(body) if body else {}
        environment = dict(self.environment_vars or {})
        version = str(self.version)  # "$LATEST" or the published version this object is (gap 10)
        invoked_arn = getattr(_state, "invoked_arn", None) or self.function_arn
        invocation_type = request_headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            cloud.runtime.invoke_async(
                self.function_name,
                event,
                environment,
                source="lambda:Invoke(Event)",
                version=version,
                invoked_arn=invoked_arn,
            )
            return b""
        result = cloud.runtime.invoke(
            self.function_name, event, environment, source="lambda:Invoke", version=version, invoked_arn=invoked_arn
        )
        response_headers["x-amz-executed-version"] = version
        if result.errored:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-log-result"] = base64.b64encode(result.logs[-4096:].encode()).decode()
        return result.payload.encode()

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, str) else (event or {})
        result = cloud.runtime.invoke(
            self.function_name,
            payload,
            dict(self.environment_vars or {}),
            source="moto",
            version=str(self.version),
            invoked_arn=self.function_arn,
        )
        return result.payload, result.errored, result.logs

    LambdaFunction.invoke = invoke
    LambdaFunction._invoke_lambda = _invoke_lambda


def invoke_target_async(cloud: LocalCloud, arn: str, event: Any, source: str) -> None:
    """An asynchronous invocation by a service (EventBridge, S3) of a function ARN, qualified or not: routed
    by the alias's weights like an Invoke (gap 10)."""
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import lambda_backends

    try:
        fn, invoked_arn = route(lambda_backends[cloud.account][arn.split(":")[3]], arn, None)
    except LambdaClientError:  # an unknown function: the runtime reports it as AWS's delivery would fail
        cloud.runtime.invoke_async(arn.split(":")[6], event, source=source)
        return
    cloud.runtime.invoke_async(
        fn.function_name,
        event,
        dict(fn.environment_vars or {}),
        source=source,
        version=str(fn.version),
        invoked_arn=invoked_arn,
    )


# --- 2, 3, 8. S3 ----------------------------------------------------------------------------------------


def _s3(cloud: LocalCloud) -> None:
    import moto.s3.notifications as notifications
    from moto.s3.exceptions import S3AccessDeniedError, S3ClientError
    from moto.s3.models import FakeBucket, s3_backends
    from moto.s3.responses import S3Response

    original_set_notification = FakeBucket.set_notification_configuration
    original_key_put = S3Response._key_response_put

    def buffered_send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        event_name = getattr(event_name, "value", event_name)  # S3NotificationEvent is a str Enum
        buffer = getattr(_state, "events", None)
        if buffer is None:
            _deliver(cloud, account_id, event_name, bucket, key)
        else:
            buffer.append((account_id, event_name, bucket, key))

    def with_events(name: str) -> None:
        original = getattr(S3Response, name)

        def wrapper(self: Any, request: Any, full_url: str, headers: Any) -> Any:
            if getattr(_state, "events", None) is not None:  # nested call of the same request
                return original(self, request, full_url, headers)
            _state.events = []
            try:
                response = original(self, request, full_url, headers)
            finally:
                events, _state.events = _state.events, None
            if response[0] < 300:
                completes = {(e[2].name, e[3].name) for e in events if e[1].endswith("CompleteMultipartUpload")}
                for account_id, event_name, bucket, key in events:
                    if event_name.endswith("ObjectCreated:Put") and (bucket.name, key.name) in completes:
                        continue  # moto emits a bare Put before the CompleteMultipartUpload of the same key
                    _deliver(cloud, account_id, event_name, bucket, key)
            return response

        setattr(S3Response, name, wrapper)

    def authorize(self: Any, request: Any, full_url: str, key_name: str | None) -> None:
        bucket_name = self.parse_bucket_name_from_url(request, full_url)
        if not bucket_name:
            return
        backend = s3_backends[cloud.account]["aws"]
        try:
            bucket = backend.get_bucket(bucket_name)
        except S3ClientError:
            return
        query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        principal = cloud.principal_for(_access_key(headers))
        for action, resource_bucket, resource in _actions(
            request.method, query, headers, bucket_name, key_name, self.body
        ):
            target = bucket if resource_bucket == bucket_name else _bucket_or_none(backend, resource_bucket)
            if target is None or not target.policy:
                continue
            denied = denying_statement(
                json.loads(target.policy),
                Request(
                    principal_arn=principal,
                    action=action,
                    resource=resource,
                    context=_condition_context(cloud, principal, headers),
                ),
            )
            if denied is not None:
                cloud.record(
                    {
                        "kind": "s3-denied",
                        "principal": principal,
                        "action": action,
                        "resource": resource,
                        "statement": denied.get("Sid", ""),
                    }
                )
                raise S3AccessDeniedError()

    original_key = S3Response._key_response
    original_bucket = S3Response._bucket_response

    def key_response(self: Any, request: Any, full_url: str) -> Any:
        authorize(self, request, full_url, self.parse_key_name())
        return original_key(self, request, full_url)

    def bucket_response(self: Any, request: Any, full_url: str) -> Any:
        authorize(self, request, full_url, None)
        return original_bucket(self, request, full_url)

    def set_notification_configuration(self: Any, notification_config: Any) -> None:
        previous = self.notification_configuration
        original_set_notification(self, notification_config)
        unauthorized = [
            q.arn
            for q in (self.notification_configuration.queue if self.notification_configuration else [])
            if not _s3_may_send(cloud, q.arn, self)
        ]
        if unauthorized:
            self.notification_configuration = previous
            raise S3ClientError(
                "InvalidArgument",
                "Unable to validate the following destination configurations: " + ", ".join(unauthorized),
            )

    def key_response_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.headers.get("x-amz-copy-source") and not self.headers.get("x-amz-sdk-checksum-algorithm"):
            from werkzeug.datastructures import Headers

            headers = Headers(self.headers)
            headers["x-amz-sdk-checksum-algorithm"] = "CRC32"  # satisfies moto's check; AWS needs nothing
            self.headers = headers
        return original_key_put(self, *args, **kwargs)

    notifications.send_event = buffered_send_event
    with_events("key_response")
    with_events("bucket_response")
    S3Response._key_response = key_response
    S3Response._bucket_response = bucket_response
    S3Response._key_response_put = key_response_put
    FakeBucket.set_notification_configuration = set_notification_configuration
    FakeBucket.get_permission = _neutral_permission


def _neutral_permission(self: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import PermissionResult

    return PermissionResult.NEUTRAL  # bucket policies are evaluated by authorize() instead


def _bucket_or_none(backend: Any, name: str) -> Any:
    from moto.s3.exceptions import S3ClientError

    try:
        return backend.get_bucket(name)
    except S3ClientError:
        return None


def _access_key(headers: dict[str, str]) -> str:
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    return match.group(1) if match else ""


def _condition_context(cloud: LocalCloud, principal: str, headers: dict[str, str]) -> dict[str, str]:
    context = {"aws:SecureTransport": "true", "aws:PrincipalArn": principal, "aws:PrincipalAccount": cloud.account}
    until = headers.get("x-amz-object-lock-retain-until-date")
    if until:
        remaining = datetime.fromisoformat(until.replace("Z", "+00:00")) - datetime.now(UTC)
        context["s3:object-lock-remaining-retention-days"] = str(max(0, -(-remaining // timedelta(days=1))))
    for header, key in (
        ("x-amz-object-lock-mode", "s3:object-lock-mode"),
        ("x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"),
        ("x-amz-server-side-encryption-aws-kms-key-id", "s3:x-amz-server-side-encryption-aws-kms-key-id"),
    ):
        if header in headers:
            context[key] = headers[header]
    return context


_KEY_SUBRESOURCES = {
    "retention": "ObjectRetention",
    "legal-hold": "ObjectLegalHold",
    "tagging": "ObjectTagging",
    "acl": "ObjectAcl",
    "attributes": "ObjectAttributes",
}
_BUCKET_ACTIONS = {
    ("PUT", "policy"): "PutBucketPolicy",
    ("DELETE", "policy"): "DeleteBucketPolicy",
    ("GET", "policy"): "GetBucketPolicy",
    ("PUT", "object-lock"): "PutBucketObjectLockConfiguration",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("PUT", "lifecycle"): "PutLifecycleConfiguration",
    ("DELETE", "lifecycle"): "PutLifecycleConfiguration",
    ("PUT", "notification"): "PutBucketNotification",
    ("PUT", "encryption"): "PutEncryptionConfiguration",
    ("GET", "versions"): "ListBucketVersions",
    ("PUT", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("PUT", "tagging"): "PutBucketTagging",
    ("PUT", "logging"): "PutBucketLogging",
    ("PUT", "ownershipControls"): "PutBucketOwnershipControls",
}


def _actions(
    method: str, query: dict[str, list[str]], headers: dict[str, str], bucket: str, key: str | None, body: Any
) -> list[tuple[str, str, str]]:
    """(action, bucket, resource ARN) pairs the request needs, named as IAM names them."""
    if key:
        resource = f"arn:aws:s3:::{bucket}/{key}"
        versioned = "Version" if "versionId" in query else ""
        sub = next((s for s in _KEY_SUBRESOURCES if s in query), None)
        if method in ("GET", "HEAD"):
            name = f"Get{_KEY_SUBRESOURCES[sub]}{versioned}" if sub else f"GetObject{versioned}"
            return [(f"s3:{name}", bucket, resource)]
        if method == "DELETE":
            if "uploadId" in query:
                return [("s3:AbortMultipartUpload", bucket, resource)]
            name = "DeleteObjectTagging" if sub == "tagging" else f"DeleteObject{versioned}"
            actions = [(f"s3:{name}", bucket, resource)]
            if headers.get("x-amz-bypass-governance-retention", "").lower() == "true":
                actions.append(("s3:BypassGovernanceRetention", bucket, resource))
            return actions
        if method == "PUT" and sub:
            actions = [(f"s3:Put{_KEY_SUBRESOURCES[sub]}{versioned}", bucket, resource)]
            if headers.get("x-amz-bypass-governance-retention", "").lower() == "true":
                actions.append(("s3:BypassGovernanceRetention", bucket, resource))
            return actions
        if method in ("PUT", "POST"):
            actions = [("s3:PutObject", bucket, resource)]
            source = headers.get("x-amz-copy-source")
            if source:
                path = urlparse(source).path.lstrip("/")
                source_bucket, _, source_key = path.partition("/")
                source_action = "s3:GetObjectVersion" if "versionId=" in source else "s3:GetObject"
                actions.append((source_action, source_bucket, f"arn:aws:s3:::{source_bucket}/{source_key}"))
            return actions
        return [(f"s3:{method.title()}Object", bucket, resource)]
    resource = f"arn:aws:s3:::{bucket}"
    if method == "POST" and "delete" in query:
        keys = re.findall(rb"<Key>([^<]*)</Key>\s*(?:<VersionId>([^<]*)</VersionId>)?", body or b"")
        return [
            ("s3:DeleteObjectVersion" if v else "s3:DeleteObject", bucket, f"arn:aws:s3:::{bucket}/{k.decode()}")
            for k, v in keys
        ]
    for (verb, sub), name in _BUCKET_ACTIONS.items():
        if verb == method and sub in query:
            return [(f"s3:{name}", bucket, resource)]
    if method == "DELETE":
        return [("s3:DeleteBucket", bucket, resource)]
    if method == "GET":
        return [("s3:ListBucket", bucket, resource)]
    return [(f"s3:{method.title()}Bucket", bucket, resource)]


def _s3_may_send(cloud: LocalCloud, queue_arn: str, bucket: Any) -> bool:
    from moto.sqs.models import sqs_backends

    region, account, name = queue_arn.split(":")[3], queue_arn.split(":")[4], queue_arn.split(":")[5]
    queue = sqs_backends[account][region].queues.get(name)
    if queue is None or not queue.policy:
        return False
    request = Request(
        principal_arn="",
        action="sqs:SendMessage",
        resource=queue_arn,
        service="s3.amazonaws.com",
        context={"aws:SourceArn": bucket.arn, "aws:SourceAccount": cloud.account, "aws:SecureTransport": "true"},
    )
    policy = json.loads(queue.policy)
    return denying_statement(policy, request) is None and allowing_statement(policy, request) is not None


def _s3_event(event_name: str, bucket: Any, key: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "key": quote_plus(key.name),
        "size": key.size,
        "eTag": key.etag.strip('"'),
        "sequencer": f"{next(_sequencer):016X}",
    }
    if bucket.is_versioned:
        obj["versionId"] = key.version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": bucket.region_name,
                "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": event_name.removeprefix("s3:"),
                "userIdentity": {"principalId": "local-cloud"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "",
                    "bucket": {"name": bucket.name, "ownerIdentity": {"principalId": "local-cloud"}, "arn": bucket.arn},
                    "object": obj,
                },
            }
        ]
    }


def _deliver(cloud: LocalCloud, account_id: str, event_name: str, bucket: Any, key: Any) -> None:
    import moto.s3.notifications as notifications
    from moto.sns.models import sns_backends
    from moto.sqs.models import sqs_backends

    config = bucket.notification_configuration
    if config is None:
        return
    for target in config.queue:
        if target.matches(event_name, key.name):
            body = _s3_event(event_name, bucket, key)
            body["Records"][0]["s3"]["configurationId"] = target.id
            region, name = target.arn.split(":")[3], target.arn.split(":")[5]
            try:
                sqs_backends[account_id][region].send_message(queue_name=name, message_body=json.dumps(body))
                cloud.record(
                    {
                        "kind": "s3-notification",
                        "target": target.arn,
                        "event": event_name,
                        "key": key.name,
                        "version_id": key.version_id,
                    }
                )
            except Exception as err:  # noqa: BLE001 - S3 delivery is asynchronous: record, never fail the PUT
                cloud.record({"kind": "s3-notification-failed", "target": target.arn, "error": repr(err)})
    for target in config.cloud_function:
        if target.matches(event_name, key.name):
            body = _s3_event(event_name, bucket, key)
            body["Records"][0]["s3"]["configurationId"] = target.id
            invoke_target_async(cloud, target.arn, body, "s3-notification")
    for target in config.topic:
        if target.matches(event_name, key.name):
            body = _s3_event(event_name, bucket, key)
            sns_backends[account_id][target.arn.split(":")[3]].publish(arn=target.arn, message=json.dumps(body))
    if config.event_bridge is not None:
        notifications._send_event_bridge_message(account_id, bucket, event_name, key)


# --- 4. SQS event source mappings -----------------------------------------------------------------------


def _sqs_event_sources() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    original = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)  # the poller delivers instead
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping


# --- 5. EventBridge -------------------------------------------------------------------------------------


def _eventbridge(cloud: LocalCloud) -> None:
    from moto.events.models import Rule
    from moto.stepfunctions.responses import get_backend as sfn_backend

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        if self.scheduled_expression and original_event.get("detail-type") != "Scheduled Event":
            return  # a schedule rule has no pattern: moto would match every event to it
        rest = []
        for target in self.targets:
            service = target["Arn"].split(":")[2]
            if service not in ("lambda", "states"):
                rest.append(target)
                continue
            event = _aws_event_shape(original_event, self.account_id)
            payload = json.loads(target["Input"]) if "Input" in target else event
            region = target["Arn"].split(":")[3]
            if service == "lambda":
                invoke_target_async(cloud, target["Arn"], payload, f"events:{self.name}")
            else:
                name = f"{self.name}-{uuid.uuid4().hex[:12]}"[:80]
                sfn_backend(self.account_id, region).start_execution(target["Arn"], name, json.dumps(payload))
            cloud.record(
                {
                    "kind": "eventbridge-target",
                    "rule": self.name,
                    "target": target["Arn"],
                    "detail-type": event.get("detail-type"),
                }
            )
        if rest:
            clone = object.__new__(Rule)
            clone.__dict__.update(self.__dict__)
            clone.targets = rest
            original(clone, original_event, transform_input)

    Rule.send_to_targets = send_to_targets


def fire_schedules(cloud: LocalCloud, now: float, last: dict[str, float]) -> None:
    """Emit `Scheduled Event`s of enabled rate(...) rules whose interval elapsed since the last (or the start)."""
    from moto.events.models import events_backends

    for bus in events_backends[cloud.account][cloud.region].event_buses.values():
        for rule in list(bus.rules.values()):
            if not rule.scheduled_expression or rule.state != "ENABLED":
                continue
            interval = rate_seconds(rule.scheduled_expression)
            started = last.setdefault(rule.arn, now)
            if now - started >= interval:
                last[rule.arn] = now
                rule.send_to_targets(
                    {
                        "version": "0",
                        "id": str(uuid.uuid4()),
                        "detail-type": "Scheduled Event",
                        "source": "aws.events",
                        "account": cloud.account,
                        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "region": cloud.region,
                        "resources": [rule.arn],
                        "detail": {},
                    }
                )
                cloud.record({"kind": "scheduled-event", "rule": rule.name})


def rate_seconds(expression: str) -> float:
    from localcloud.intrinsics import UnsupportedError

    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise UnsupportedError(f"schedule expression {expression!r} (the local cloud runs rate(...) only)")
    return int(match.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]


def _aws_event_shape(event: dict[str, Any], account: str) -> dict[str, Any]:
    shaped = {k: v for k, v in event.items() if k != "ingestion-time"}
    if isinstance(shaped.get("time"), int | float):
        shaped["time"] = datetime.fromtimestamp(shaped["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shaped.setdefault("account", account)
    return shaped


# --- 6. CloudWatch alarms -------------------------------------------------------------------------------


def _cloudwatch(cloud: LocalCloud) -> None:
    from moto.cloudwatch.models import Alarm
    from moto.events.models import events_backends

    original = Alarm.update_state

    def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        previous = {
            "value": self.state_value,
            "reason": self.state_reason,
            "timestamp": _iso(self.state_updated_timestamp),
        }
        original(self, reason, reason_data, state_value)
        if previous["value"] == state_value:
            return
        detail = {
            "alarmName": self.name,
            "state": {"value": state_value, "reason": reason, "timestamp": _iso(self.state_updated_timestamp)},
            "previousState": previous,
            "configuration": {
                "description": self.description or "",
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": self.namespace,
                                "name": self.metric_name,
                                "dimensions": {d.name: d.value for d in self.dimensions},
                            },
                            "period": self.period,
                            "stat": self.statistic,
                        },
                    }
                ],
            },
        }
        events_backends[cloud.account][self.region_name].put_events(
            [
                {
                    "Source": "aws.cloudwatch",
                    "DetailType": "CloudWatch Alarm State Change",
                    "Resources": [self.alarm_arn],
                    "Detail": json.dumps(detail),
                }
            ]
        )
        cloud.record({"kind": "alarm-state-change", "alarm": self.name, "from": previous["value"], "to": state_value})

    Alarm.update_state = update_state


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- 7. Step Functions ----------------------------------------------------------------------------------


def _stepfunctions(cloud: LocalCloud) -> None:
    import os

    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    os.environ["MOTO_PORT"] = str(cloud.port)


# --- 10. Lambda versions and aliases --------------------------------------------------------------------


def _lambda_versions() -> None:
    from moto.awslambda.models import LambdaBackend, LambdaStorage
    from moto.awslambda.responses import LambdaResponse

    _routing.seed(os.environ.get(ROUTING_SEED))  # unset: seeded from the OS, as random.Random() is
    original_response_invoke = LambdaResponse.invoke
    original_publish = LambdaStorage.publish_version
    original_put_alias = LambdaStorage.put_alias
    original_update_alias = LambdaStorage.update_alias

    def response_invoke(self: Any) -> Any:
        # moto reads a lowercase `qualifier` (from the query string, else from the payload): give it Qualifier=
        self.querystring["qualifier"] = self.querystring.get("Qualifier") or [None]
        return original_response_invoke(self)

    def backend_invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> str | bytes:
        fn, invoked_arn = route(self, function_name, qualifier)
        _state.invoked_arn = invoked_arn
        try:
            payload = fn.invoke(body, headers, response_headers)
        finally:
            _state.invoked_arn = None
        response_headers["Content-Length"] = str(len(payload))
        return payload

    def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
        version = original_publish(self, name_or_arn, description)
        if version is not None:
            # a version is immutable: its configuration must not share mutable state with $LATEST
            version.environment_vars = copy.deepcopy(version.environment_vars)
            latest = self._functions[version.function_name]["latest"]
            if latest is not None:
                latest.code_or_config_updated = False  # moto keeps it set after the first publish
        return version

    def put_alias(
        self: Any, name: str, function_name: str, function_version: str, description: str, routing_config: Any
    ) -> Any:
        _check_routing(self, function_name, function_version, routing_config)
        return original_put_alias(self, name, function_name, function_version, description, routing_config)

    def update_alias(
        self: Any, name: str, function_name: str, function_version: str, description: str, routing_config: Any
    ) -> Any:
        alias = self.get_alias(name, _split_function(function_name)[0])
        _check_routing(
            self,
            function_name,
            function_version if function_version is not None else alias.function_version,
            routing_config if routing_config is not None else alias.routing_config,
        )
        return original_update_alias(self, name, function_name, function_version, description, routing_config)

    LambdaResponse.invoke = response_invoke
    LambdaBackend.invoke = backend_invoke
    LambdaStorage.publish_version = publish_version
    LambdaStorage.put_alias = put_alias
    LambdaStorage.update_alias = update_alias


def route(backend: Any, name_or_arn: str, qualifier: str | None) -> tuple[Any, str]:
    """(moto's function object that runs, the ARN the caller invoked) for an invocation of `name_or_arn`
    (a name, partial or full ARN, each optionally qualified) with an optional Qualifier."""
    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.awslambda.utils import make_function_arn

    storage = backend._lambdas
    name, in_name = _split_function(name_or_arn)
    if in_name and qualifier and in_name != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    qualifier = in_name or qualifier
    fn = storage.get_function_by_name_with_qualifier(name, qualifier)  # ResourceNotFound as moto raises it
    invoked_arn = make_function_arn(backend.region_name, backend.account_id, name)
    if qualifier:
        invoked_arn += f":{qualifier}"
    if qualifier and qualifier.upper() != "$LATEST" and not qualifier.isdigit():
        alias = storage.get_alias(qualifier, name)
        draw = _routing.random()
        for version, weight in _weights(alias.routing_config).items():
            if draw < float(weight):
                fn = storage._get_version(name, version) or fn
                break
            draw -= float(weight)
    return fn, invoked_arn


def _split_function(name_or_arn: str) -> tuple[str, str | None]:
    """(name, qualifier or None) of `fn`, `fn:q`, `123456789012:function:fn[:q]` or a full function ARN."""
    rest = name_or_arn.split(":function:", 1)[1] if ":function:" in name_or_arn else name_or_arn
    name, _, qualifier = rest.partition(":")
    return name, qualifier or None


def _weights(routing_config: Any) -> dict[str, float]:
    return dict((routing_config or {}).get("AdditionalVersionWeights") or {})


def _check_routing(storage: Any, function_name: str, primary: str, routing_config: Any) -> None:
    """What Lambda refuses of an alias's routing configuration (the alias as it would be after the call)."""
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError, UnknownFunctionException
    from moto.awslambda.utils import make_function_arn

    weights = _weights(routing_config)
    if not weights:
        return
    name = _split_function(function_name)[0]
    if len(weights) > 1:
        raise InvalidParameterValueException("Number of items in AdditionalVersionWeights cannot be greater than 1")
    ((version, weight),) = weights.items()
    if not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise LambdaClientError(
            "ValidationException",
            f"1 validation error detected: Value '{{{version}={weight}}}' at 'routingConfig.additionalVersionWeights'"
            " failed to satisfy constraint: Map value must be between 0.0 and 1.0",
        )
    if not str(version).isdigit():
        raise LambdaClientError(
            "ValidationException",
            f"1 validation error detected: Value '{{{version}={weight}}}' at 'routingConfig.additionalVersionWeights'"
            " failed to satisfy constraint: Map keys must be published version numbers ([0-9]+)",
        )
    if str(primary).upper() == "$LATEST":
        raise InvalidParameterValueException("$LATEST is not supported for an alias pointing to more than 1 version")
    if str(version) == str(primary):
        raise InvalidParameterValueException(
            f"Invalid function version {primary}. Function version {primary} is already included in routing "
            "configuration."
        )
    additional = storage._get_version(name, str(version)) if name in storage._functions else None
    if additional is None:
        raise UnknownFunctionException(f"{make_function_arn(storage.region_name, storage.account_id, name)}:{version}")
    main = storage._get_version(name, str(primary))
    if main is not None and main.role != additional.role:
        raise InvalidParameterValueException(
            f"Versions {primary} and {version} of an alias must have the same execution role."
        )


# --- 11. KMS Sign and Verify with MessageType=DIGEST ----------------------------------------------------


def _kms() -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import ValidationException
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import ECDSAPrivateKey, RSAPrivateKey, SigningAlgorithm, validate_signing_algorithm

    def with_message_type(name: str) -> None:
        original = getattr(KmsResponse, name)

        def wrapper(self: Any) -> Any:
            message_type = self._get_param("MessageType") or "RAW"
            if message_type not in ("RAW", "DIGEST"):
                raise ValidationException(
                    f"1 validation error detected: Value '{message_type}' at 'messageType' failed to satisfy "
                    "constraint: Member must satisfy enum value set: [RAW, DIGEST]"
                )
            _state.kms_digest = message_type == "DIGEST"
            try:
                response = original(self)
            finally:
                _state.kms_digest = False
            if name == "verify" and not json.loads(response)["SignatureValid"]:
                raise JsonRESTError("KMSInvalidSignatureException", "")
            return response

        setattr(KmsResponse, name, wrapper)

    ecdsa_sign, ecdsa_verify = ECDSAPrivateKey.sign, ECDSAPrivateKey.verify
    rsa_sign, rsa_verify = RSAPrivateKey.sign, RSAPrivateKey.verify

    def ecdsa_sign_digest(self: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_state, "kms_digest", False):
            return ecdsa_sign(self, message, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        return self.private_key.sign(message, ec.ECDSA(_prehashed(signing_algorithm, message)))

    def ecdsa_verify_digest(self: Any, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if not getattr(_state, "kms_digest", False):
            return ecdsa_verify(self, message, signature, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        try:
            self.private_key.public_key().verify(signature, message, ec.ECDSA(_prehashed(signing_algorithm, message)))
        except InvalidSignature:
            return False
        return True

    def rsa_sign_digest(self: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_state, "kms_digest", False):
            return rsa_sign(self, message, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, SigningAlgorithm.rsa_signing_algorithms())
        pad, _ = self._RSAPrivateKey__padding_and_hash_algorithm(signing_algorithm)
        return self.private_key.sign(message, pad, _prehashed(signing_algorithm, message))

    def rsa_verify_digest(self: Any, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if not getattr(_state, "kms_digest", False):
            return rsa_verify(self, message, signature, signing_algorithm)
        validate_signing_algorithm(signing_algorithm, SigningAlgorithm.rsa_signing_algorithms())
        pad, _ = self._RSAPrivateKey__padding_and_hash_algorithm(signing_algorithm)
        try:
            self.private_key.public_key().verify(signature, message, pad, _prehashed(signing_algorithm, message))
        except InvalidSignature:
            return False
        return True

    with_message_type("sign")
    with_message_type("verify")
    ECDSAPrivateKey.sign, ECDSAPrivateKey.verify = ecdsa_sign_digest, ecdsa_verify_digest
    RSAPrivateKey.sign, RSAPrivateKey.verify = rsa_sign_digest, rsa_verify_digest


def _prehashed(signing_algorithm: str, digest: bytes) -> Any:
    """The digest as cryptography's prehashed value for the algorithm's hash; its length must be that hash's."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms.exceptions import ValidationException

    algorithm = {"SHA_256": hashes.SHA256(), "SHA_384": hashes.SHA384(), "SHA_512": hashes.SHA512()}.get(
        signing_algorithm[-7:]
    )
    if algorithm is None:
        raise ValidationException(f"MessageType DIGEST is not supported for {signing_algorithm} in the local cloud.")
    if len(digest) != algorithm.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return Prehashed(algorithm)


# --- 12. Embedded Metric Format -------------------------------------------------------------------------


class EmfError(ValueError):
    """A log line in EMF that CloudWatch would not extract metrics from; the message says why."""


def put_emf(cloud: LocalCloud, function: str, line: str) -> None:
    """Extract the metrics of one line a function printed, if it is in EMF, into moto's CloudWatch."""
    from moto.cloudwatch.models import cloudwatch_backends

    try:
        document = json.loads(line)
    except ValueError:
        return  # not JSON: an ordinary log line
    if not isinstance(document, dict) or "_aws" not in document:
        return
    try:
        extracted = emf_metric_data(document)
    except EmfError as err:
        cloud.record({"kind": "emf-rejected", "function": function, "error": str(err)})
        return
    backend = cloudwatch_backends[cloud.account][cloud.region]
    datapoints = 0
    for namespace, metric_data in extracted:
        backend.put_metric_data(namespace, metric_data)
        datapoints += sum(len(m.get("Values") or [0]) for m in metric_data)
    cloud.record(
        {
            "kind": "emf-metrics",
            "function": function,
            "metrics": sorted({f"{ns}/{m['MetricName']}" for ns, data in extracted for m in data}),
            "datapoints": datapoints,
        }
    )


def emf_metric_data(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, PutMetricData MetricData) pairs of an EMF document: one member per metric and dimension set."""
    meta = document["_aws"]
    if not isinstance(meta, dict):
        raise EmfError("_aws is not an object")
    millis = meta.get("Timestamp")
    if not _is_number(millis):
        raise EmfError("_aws.Timestamp is not a number of milliseconds")
    timestamp = datetime.fromtimestamp(millis / 1000, UTC).replace(tzinfo=None)  # moto keeps naive UTC times
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        raise EmfError("_aws.CloudWatchMetrics is not a list")
    extracted = []
    for directive in directives:
        if not isinstance(directive, dict):
            raise EmfError("a CloudWatchMetrics directive is not an object")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not namespace:
            raise EmfError("a directive has no Namespace")
        dimension_sets = directive.get("Dimensions") or [[]]
        if not isinstance(dimension_sets, list) or not all(isinstance(s, list) for s in dimension_sets):
            raise EmfError(f"{namespace}: Dimensions is not a list of dimension sets")
        for key in {k for s in dimension_sets for k in s}:
            if not isinstance(key, str) or not isinstance(document.get(key), str):
                raise EmfError(f"{namespace}: dimension {key!r} has no string value")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list):
            raise EmfError(f"{namespace}: Metrics is not a list")
        metric_data = []
        for metric in metrics:
            name = metric.get("Name") if isinstance(metric, dict) else None
            if not isinstance(name, str) or not name:
                raise EmfError(f"{namespace}: a metric has no Name")
            value = document.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or not all(_is_number(v) for v in values) or any(math.isnan(v) for v in values):
                raise EmfError(f"{namespace}/{name}: the value {value!r} is not a number or a list of numbers")
            for dimension_set in dimension_sets:
                member: dict[str, Any] = {
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": document[k]} for k in dimension_set],
                    "Timestamp": timestamp,
                    "Unit": metric.get("Unit") or "None",
                }
                if isinstance(value, list):
                    member["Values"] = [float(v) for v in values]
                else:
                    member["Value"] = float(value)
                metric_data.append(member)
        extracted.append((namespace, metric_data))
    return extracted


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cloudwatch_metrics() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.get_metric_statistics

    def get_metric_statistics(
        self: Any,
        namespace: str,
        metric_name: str,
        start_time: datetime,
        end_time: datetime,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> Any:
        wanted = _dimension_key((d["Name"], d.get("Value")) for d in dimensions or [])
        exact = _Metrics(
            [md for md in self.get_all_metrics() if _dimension_key((d.name, d.value) for d in md.dimensions) == wanted]
        )  # moto's implementation reads only get_all_metrics(); without dimensions it filters no further
        return original(exact, namespace, metric_name, start_time, end_time, period, stats, [], unit)

    CloudWatchBackend.get_metric_statistics = get_metric_statistics


class _Metrics:
    def __init__(self, metrics: list[Any]) -> None:
        self._metrics = metrics

    def get_all_metrics(self) -> list[Any]:
        return self._metrics


def _dimension_key(pairs: Any) -> frozenset[tuple[Any, Any]]:
    return frozenset(pairs)


# --- 13. Alarm evaluation -------------------------------------------------------------------------------

_COMPARISONS = {
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
_STATISTICS = ("Average", "Sum", "Maximum", "Minimum", "SampleCount")


def alarm_state(
    values: list[float | None],
    *,
    threshold: float,
    comparison: str,
    datapoints_to_alarm: int,
    treat_missing_data: str | None,
) -> str | None:
    """The state an alarm's evaluation range gives (one statistic per period, None where a period has no
    data), or None when the state is to be kept (`ignore` with no data at all)."""
    compare = _COMPARISONS[comparison][0]
    treatment = treat_missing_data or "missing"
    if treatment in ("breaching", "notBreaching"):
        missing_breaches = treatment == "breaching"
        breaching = sum(1 for v in values if (missing_breaches if v is None else compare(v, threshold)))
        return "ALARM" if breaching >= datapoints_to_alarm else "OK"
    present = [v for v in values if v is not None]
    if not present:
        return "INSUFFICIENT_DATA" if treatment == "missing" else None
    breaching = sum(1 for v in present if compare(v, threshold))
    return "ALARM" if breaching >= min(datapoints_to_alarm, len(present)) else "OK"


@dataclass
class _Verdict:
    alarm: Any  # moto's Alarm object the verdict is of (PutMetricAlarm replaces it)
    key: tuple[int, int]  # (current period, number of datapoints stored): unchanged, nothing to evaluate
    state: str | None  # the evaluator's last verdict


class AlarmEvaluator:
    """Evaluates the metric alarms of the local cloud's region from their metric data (gap 13)."""

    def __init__(self, cloud: LocalCloud, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"alarm scale must be positive, got {scale}")
        self._cloud = cloud
        self.scale = scale
        self._verdicts: dict[str, _Verdict] = {}
        self._not_evaluated: set[str] = set()

    def evaluate(self, now: float | None = None) -> None:
        """One pass over every alarm; cheap when nothing changed (no new period, no new datapoint)."""
        from moto.cloudwatch.models import cloudwatch_backends

        now = time.time() if now is None else now
        backend = cloudwatch_backends[self._cloud.account][self._cloud.region]
        alarms = list(backend.alarms.values())
        for gone in set(self._verdicts) - {a.name for a in alarms}:
            del self._verdicts[gone]
        data: list[Any] | None = None
        for alarm in alarms:
            why_not = _not_evaluable(alarm)
            if why_not:
                if alarm.name not in self._not_evaluated:
                    self._not_evaluated.add(alarm.name)
                    self._cloud.record({"kind": "alarm-not-evaluated", "alarm": alarm.name, "reason": why_not})
                continue
            period = int(alarm.period) / self.scale
            current = math.floor(now / period)
            key = (current, len(backend.metric_data))
            verdict = self._verdicts.get(alarm.name)
            if verdict is not None and verdict.alarm is alarm and verdict.key == key:
                continue
            if data is None:
                data = list(backend.metric_data)
            self._judge(alarm, verdict if verdict is not None and verdict.alarm is alarm else None, key, data, now)

    def _judge(self, alarm: Any, verdict: _Verdict | None, key: tuple[int, int], data: list[Any], now: float) -> None:
        from moto.cloudwatch.models import Statistics
        from moto.core.utils import utcnow

        periods = int(alarm.evaluation_periods)
        needed = int(alarm.datapoints_to_alarm or periods)
        period = int(alarm.period) / self.scale
        first = key[0] - periods
        buckets: list[list[Any]] = [[] for _ in range(periods)]
        wanted = _dimension_key((d.name, d.value) for d in alarm.dimensions)
        for md in data:
            if md.namespace != alarm.namespace or md.name != alarm.metric_name:
                continue
            if alarm.unit and md.unit != alarm.unit:
                continue
            if _dimension_key((d.name, d.value) for d in md.dimensions) != wanted:
                continue
            index = math.floor(md.timestamp.replace(tzinfo=UTC).timestamp() / period) - first
            if 0 <= index < periods:
                buckets[index].append(md)
        values: list[float | None] = []
        for bucket in buckets:
            statistics = Statistics([alarm.statistic], utcnow())
            statistics.metric_data = bucket
            value = statistics.get_statistics_for_type(alarm.statistic) if bucket else None
            values.append(None if value is None else float(value))
        state = alarm_state(
            values,
            threshold=float(alarm.threshold),
            comparison=alarm.comparison_operator,
            datapoints_to_alarm=needed,
            treat_missing_data=alarm.treat_missing_data,
        )
        starts = [datetime.fromtimestamp((first + i) * period, UTC) for i in range(periods)]
        if verdict is None:  # the alarm's first verdict (or one made by hand before it)
            untouched = not alarm.history and str(alarm.state_reason).startswith("Unchecked")
            if untouched and state is not None and state != alarm.state_value:
                reason, reason_data = _reason(alarm, state, values, starts, needed, now)
                if state == "ALARM":
                    alarm.update_state(reason, reason_data, state)
                else:  # taken silently: AWS would have created the alarm in this state
                    alarm.state_value, alarm.state_reason, alarm.state_reason_data = state, reason, reason_data
                    alarm.state_updated_timestamp = utcnow()
        elif state is not None and state != verdict.state and state != alarm.state_value:
            reason, reason_data = _reason(alarm, state, values, starts, needed, now)
            alarm.update_state(reason, reason_data, state)
        kept = state if state is not None else (verdict.state if verdict is not None else None)
        self._verdicts[alarm.name] = _Verdict(alarm=alarm, key=key, state=kept)


def _not_evaluable(alarm: Any) -> str:
    if alarm.metric_data_queries:
        return "metric math alarms (Metrics) are not evaluated locally"
    if alarm.extended_statistic or alarm.statistic not in _STATISTICS:
        return f"statistic {alarm.extended_statistic or alarm.statistic!r} is not evaluated locally"
    if alarm.comparison_operator not in _COMPARISONS:
        return f"comparison {alarm.comparison_operator!r} is not evaluated locally"
    if not alarm.period or not alarm.evaluation_periods:
        return "the alarm has no Period or EvaluationPeriods"
    return ""


def _reason(
    alarm: Any, state: str, values: list[float | None], starts: list[datetime], needed: int, now: float
) -> tuple[str, str]:
    """StateReason and StateReasonData as CloudWatch words them."""
    relation = _COMPARISONS[alarm.comparison_operator][1]
    recent = [(v, s) for v, s in zip(values, starts, strict=True) if v is not None][::-1]
    listing = ", ".join(f"{_number(v)} ({s:%d/%m/%y %H:%M:%S})" for v, s in recent)
    threshold = _number(float(alarm.threshold))
    compare = _COMPARISONS[alarm.comparison_operator][0]
    if state == "INSUFFICIENT_DATA":
        reason = f"Insufficient Data: {len(values)} datapoint{'s were' if len(values) > 1 else ' was'} unknown."
    elif state == "ALARM":
        count = sum(1 for v in values if v is not None and compare(v, float(alarm.threshold)))
        reason = (
            f"Threshold Crossed: {count} out of the last {len(values)} datapoints [{listing}] "
            f"{'was' if count == 1 else 'were'} {relation} the threshold ({threshold}) "
            f"(minimum {needed} datapoint{'s' if needed > 1 else ''} for {alarm.state_value} -> ALARM transition)."
        )
    else:
        count = sum(1 for v in values if v is None or not compare(v, float(alarm.threshold)))
        reason = (
            f"Threshold Crossed: {count} out of the last {len(values)} datapoints [{listing}] "
            f"{'was' if count == 1 else 'were'} not {relation} the threshold ({threshold}) "
            f"(minimum {needed} datapoint{'s' if needed > 1 else ''} for ALARM transition)."
        )
    data = {
        "version": "1.0",
        "queryDate": _stamp(datetime.fromtimestamp(now, UTC)),
        "startDate": _stamp(starts[0]),
        "statistic": alarm.statistic,
        "period": int(alarm.period),
        "recentDatapoints": [v for v, _ in recent[::-1]],
        "threshold": float(alarm.threshold),
        "evaluatedDatapoints": [{"timestamp": _stamp(s), "value": v} for v, s in recent],
    }
    return reason, json.dumps(data)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"

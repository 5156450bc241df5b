"""S3: notifications (gap 2), authorization (gap 3) and CopyObject into Object Lock buckets (gap 8).

2. S3 notifications. moto sends them inside PutObject before metadata, checksum and tags are stored, without
   versionId or sequencer, and swallows delivery errors; it accepts destinations S3 could not validate.
   Here events are buffered per request and delivered after the object is complete, with versionId, sequencer,
   URL-encoded key and the configuration's `configurationId`, to queues, functions and topics alike; a queue
   destination whose policy does not let S3 send fails the configuration, as AWS's destination validation does;
   each delivery is recorded in the local cloud's event log (`s3-notification`), each failure too
   (`s3-notification-failed`) and never fails the request that stored the object (S3 delivers asynchronously).
3. Authorization. moto treats conditional Deny statements of bucket policies as unconditional, ignores
   principals, checks only Get/Put/Delete object and never identity policies. Here every S3 request is
   authorized by authz.py (gap 14) for the caller its access key (Authorization header or presigned
   `X-Amz-Credential`) names, anonymous without one: the actions, resources and condition keys of
   services/s3_requests.py, the bucket's policy, the caller's identity policies. Denials fail with AccessDenied
   and are recorded as `s3-denied`. SSE-KMS is used on the caller's behalf, as S3 does: writing to a bucket
   whose default encryption (or the request's) is aws:kms needs kms:GenerateDataKey on that key, reading an
   object it encrypted (GET, a copy's source) kms:Decrypt, each authorized by the key policy and the caller's
   policies with kms:ViaService and the `aws:s3:arn` encryption context. moto's own bucket-policy check is off.
8. Object Lock. moto refuses CopyObject into a bucket with default retention unless the request carries a
   Content-MD5 or `x-amz-sdk-checksum-algorithm` header, which AWS does not require of a copy (boto3 sends
   none). Here a copy satisfies the check, as in AWS.

A PUT of an object whose Content-Type is application/x-www-form-urlencoded (urllib's default, as a custom
resource answering its ResponseURL sends it, gap 18) keeps its bytes, as in S3: moto parsed them as a form.

(Gap 9, server access logging configured after the log target's policy, is closed by the provisioner:
resources/cfn_s3.py. Gap 15, Object Lock retention rules and the metadata limit: services/s3_lock.py.)
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote_plus, unquote, urlparse

from localcloud.authz import AccessDenied, Caller, access_key_of
from localcloud.iam_actions import Need
from localcloud.iam_policy import Request, allowing_statement, denying_statement
from localcloud.services import s3_lock
from localcloud.services.awslambda import invoke_target_async
from localcloud.services.s3_requests import S3Request, UnmappedRequest, s3_needs

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

_state = threading.local()  # events: the notifications of the request being served, delivered once it is done
_sequencer = itertools.count(1)


def install(cloud: LocalCloud) -> None:
    import moto.s3.notifications as notifications
    from moto.s3.exceptions import S3ClientError
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
            if request.method == "PUT" and "form-urlencoded" in (request.headers.get("Content-Type") or ""):
                request.get_data(cache=True)  # an object's bytes, not a form: moto would parse them away
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
        bucket_name = self.parse_bucket_name_from_url(request, full_url) or None
        query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        s3_lock.set_bypass(headers.get("x-amz-bypass-governance-retention", "").lower() == "true")
        access_key = access_key_of(request.headers, query)
        caller = cloud.authorizer.caller(access_key) if access_key else Caller("", "anonymous")
        if caller is None:
            raise s3_error(
                "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403
            )
        s3_request = S3Request.of(request.method, full_url, bucket_name, key_name or None, headers, self.body)
        try:
            needs = s3_needs(s3_request)
        except UnmappedRequest as err:
            raise s3_error(
                "NotImplemented", f"The local cloud does not map this request to IAM actions: {err}", 501
            ) from err
        backend = s3_backends[cloud.account]["aws"]
        try:
            for need in needs:
                bucket = _bucket_or_none(backend, need.resource.removeprefix("arn:aws:s3:::").split("/", 1)[0])
                policy = json.loads(bucket.policy) if bucket is not None and bucket.policy else None
                cloud.authorizer.check(caller, need, resource_policy=policy, record_kind="s3-denied")
            for need in _kms_needs(backend, s3_request, needs):
                cloud.authorizer.authorize(caller, "kms", need)
        except AccessDenied as denied:
            raise s3_error("AccessDenied", denied.message, 403) from None
        if key_name and _writes_metadata(s3_request) and s3_lock.metadata_too_large(request.headers):
            raise s3_error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.", 400)

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

    original_serialized = S3Response.serialized

    def serialized(self: Any, result: Any) -> Any:
        status, headers, body = original_serialized(self, result)
        return getattr(getattr(result, "result", None), "http_status", status), headers, body

    S3Response.serialized = serialized
    notifications.send_event = buffered_send_event
    with_events("key_response")
    with_events("bucket_response")
    S3Response._key_response = key_response
    S3Response._bucket_response = bucket_response
    S3Response._key_response_put = key_response_put
    FakeBucket.set_notification_configuration = set_notification_configuration
    FakeBucket.get_permission = _neutral_permission


def s3_error(code: str, message: str, status: int) -> Exception:
    """An S3 error with its HTTP status (moto takes the status of codes botocore's model lacks as 400)."""
    from moto.s3.exceptions import S3ClientError

    error = S3ClientError(code, message)
    error.http_status = status
    return error


def _neutral_permission(self: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import PermissionResult

    return PermissionResult.NEUTRAL  # bucket policies are evaluated by authorize() instead


def _bucket_or_none(backend: Any, name: str) -> Any:
    from moto.s3.exceptions import S3ClientError

    try:
        return backend.get_bucket(name)
    except S3ClientError:
        return None


def _writes_metadata(request: S3Request) -> bool:
    """PutObject, CreateMultipartUpload and CopyObject replacing the metadata: requests that set user metadata."""
    if request.method == "PUT" and not set(request.query) & {"uploadId", "tagging", "retention", "legal-hold", "acl"}:
        copy = request.headers.get("x-amz-copy-source")
        return not copy or request.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
    return request.method == "POST" and "uploads" in request.query


_KMS_WRITES = {"s3:PutObject"}
_KMS_READS = {"s3:GetObject", "s3:GetObjectVersion"}


def _kms_needs(backend: Any, request: S3Request, needs: list[Need]) -> list[Need]:
    """What S3 asks of KMS on the caller's behalf for an SSE-KMS object: GenerateDataKey to write (and Decrypt for a
    multipart upload), Decrypt to read (GET of the object, the source of a copy)."""
    result = []
    for need in needs:
        arn = need.resource.removeprefix("arn:aws:s3:::")
        bucket_name, _, key_name = arn.partition("/")
        bucket = _bucket_or_none(backend, bucket_name)
        if bucket is None or not key_name:
            continue
        is_source = need.action in _KMS_READS and request.method in ("PUT", "POST")
        if need.action in _KMS_WRITES and not is_source:
            key_id, bucket_key = _write_key(bucket, request.headers)
            if key_id:
                actions = ["kms:GenerateDataKey"] + (["kms:Decrypt"] if "uploads" in request.query else [])
                result += [_kms_need(backend, a, key_id, bucket, key_name, bucket_key) for a in actions]
        elif need.action in _KMS_READS and (request.method == "GET" or is_source):
            version = None if is_source else request.query.get("versionId", [None])[0]
            if is_source:
                version = unquote(request.headers.get("x-amz-copy-source", "")).partition("?versionId=")[2] or None
            try:
                obj = backend.get_object(bucket_name, key_name, version_id=version)
            except Exception:  # noqa: BLE001 - no such version: S3 answers NoSuchKey/NoSuchVersion after this
                obj = None
            if obj is not None and obj.encryption == "aws:kms" and obj.kms_key_id:
                result.append(
                    _kms_need(backend, "kms:Decrypt", obj.kms_key_id, bucket, key_name, obj.bucket_key_enabled)
                )
    return result


def _write_key(bucket: Any, headers: dict[str, str]) -> tuple[str | None, bool]:
    rule = (bucket.encryption or {}).get("Rule", {})
    if headers.get("x-amz-server-side-encryption") == "aws:kms":
        key = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
        bucket_key = headers.get("x-amz-server-side-encryption-bucket-key-enabled")
        if bucket_key is None:  # the bucket's S3 Bucket Key setting applies, as S3 applies it
            return key, str(rule.get("BucketKeyEnabled", "")).lower() == "true"
        return key, bucket_key.lower() == "true"
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    if default.get("SSEAlgorithm") == "aws:kms":
        return default.get("KMSMasterKeyID"), str(rule.get("BucketKeyEnabled", "")).lower() == "true"
    return None, False


def _kms_need(backend: Any, action: str, key_id: str, bucket: Any, key_name: str, bucket_key: Any) -> Need:
    from moto.kms.models import kms_backends

    kms = kms_backends[bucket.account_id][bucket.region_name]
    try:
        key_arn = kms.keys[kms.any_id_to_key_id(key_id)].arn
    except Exception:  # noqa: BLE001 - an unknown key: authorized as named (no key policy allows it)
        key_arn = key_id
    context_arn = bucket.arn if str(bucket_key).lower() == "true" else f"{bucket.arn}/{key_name}"
    return Need(
        action,
        key_arn,
        {"kms:ViaService": f"s3.{bucket.region_name}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": context_arn},
    )


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
            body["Records"][0]["s3"]["configurationId"] = target.id
            try:
                sns_backends[account_id][target.arn.split(":")[3]].publish(
                    arn=target.arn, message=json.dumps(body), subject="Amazon S3 Notification"
                )
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
    if config.event_bridge is not None:
        notifications._send_event_bridge_message(account_id, bucket, event_name, key)

"""S3: notifications (gap 2), bucket policies (gap 3) and CopyObject into Object Lock buckets (gap 8).

2. S3 notifications. moto sends them inside PutObject before metadata, checksum and tags are stored, without
   versionId or sequencer, and swallows delivery errors; it accepts destinations S3 could not validate.
   Here events are buffered per request and delivered after the object is complete, with versionId, sequencer
   and URL-encoded key; a queue destination whose policy does not let S3 send fails the configuration, as AWS's
   destination validation does; delivery failures are recorded in the local cloud's event log.
3. Bucket policies. moto treats conditional Deny statements as unconditional, ignores principals and checks only
   Get/Put/Delete object. Here every S3 request is checked against the bucket's Deny statements with the
   precise action, the caller's principal and the request's condition keys (iam_policy.py); moto's own check is
   off. `aws:SecureTransport` is true: the local cloud serves plain HTTP on loopback only, in place of TLS.
8. Object Lock. moto refuses CopyObject into a bucket with default retention unless the request carries a
   Content-MD5 or `x-amz-sdk-checksum-algorithm` header, which AWS does not require of a copy (boto3 sends
   none). Here a copy satisfies the check, as in AWS.

(Gap 9, server access logging configured after the log target's policy, is closed by the provisioner:
resources/cfn_s3.py.)
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote_plus, urlparse

from localcloud.iam_policy import Request, allowing_statement, denying_statement
from localcloud.services.awslambda import invoke_target_async

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

_state = threading.local()  # events: the notifications of the request being served, delivered once it is done
_sequencer = itertools.count(1)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def install(cloud: LocalCloud) -> None:
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
        bucket = _bucket_or_none(backend, bucket_name)
        if bucket is None:
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

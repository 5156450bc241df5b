"""S3 requests named as IAM names them: actions, resource ARNs and condition keys (gap 3).

3 (actions). Each S3 request is authorized (authz.py) as the actions the Service Authorization Reference gives
   its operation, not by its HTTP verb: a request on a version (`versionId`) needs the `...Version` action
   (GetObjectVersion, DeleteObjectVersion, PutObjectVersionTagging, GetObjectVersionTagging, ...) where IAM has
   one; retention and legal hold are s3:PutObjectRetention / s3:PutObjectLegalHold with or without a version (IAM
   has no version form), plus s3:BypassGovernanceRetention when the request carries
   `x-amz-bypass-governance-retention: true`; bucket sub-resources by their own names (GetBucketLocation,
   GetBucketVersioning, GetLifecycleConfiguration, GetEncryptionConfiguration, ...); HEAD bucket, ListObjects
   and ListObjectsV2 are s3:ListBucket; ListObjectVersions s3:ListBucketVersions; multipart uploads
   s3:PutObject, s3:ListMultipartUploadParts, s3:AbortMultipartUpload; CopyObject and UploadPartCopy also read the
   source (s3:GetObject or s3:GetObjectVersion); a PUT carrying tags also needs s3:PutObjectTagging; CreateBucket
   with Object Lock also s3:PutBucketObjectLockConfiguration and s3:PutBucketVersioning; DeleteObjects one
   s3:DeleteObject(Version) per key. A query parameter that is neither a known sub-resource nor a request
   parameter fails the request (NotImplemented) rather than being authorized as something it is not.
   Condition keys: s3:versionid, s3:prefix, s3:delimiter, s3:max-keys, s3:x-amz-server-side-encryption(-aws-kms-
   key-id), s3:object-lock-mode, s3:object-lock-retain-until-date, s3:object-lock-remaining-retention-days (from
   the headers of a PUT, or the Retention body of PutObjectRetention), s3:object-lock-legal-hold,
   s3:x-amz-copy-source, s3:x-amz-metadata-directive, s3:RequestObjectTagKeys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from localcloud.iam_actions import Need

_BUCKET_SUBRESOURCES: dict[str, dict[str, str]] = {
    "location": {"GET": "GetBucketLocation"},
    "versioning": {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"},
    "policy": {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy", "DELETE": "DeleteBucketPolicy"},
    "policyStatus": {"GET": "GetBucketPolicyStatus"},
    "acl": {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"},
    "cors": {"GET": "GetBucketCORS", "PUT": "PutBucketCORS", "DELETE": "PutBucketCORS"},
    "lifecycle": {
        "GET": "GetLifecycleConfiguration",
        "PUT": "PutLifecycleConfiguration",
        "DELETE": "PutLifecycleConfiguration",
    },
    "notification": {"GET": "GetBucketNotification", "PUT": "PutBucketNotification"},
    "encryption": {
        "GET": "GetEncryptionConfiguration",
        "PUT": "PutEncryptionConfiguration",
        "DELETE": "PutEncryptionConfiguration",
    },
    "logging": {"GET": "GetBucketLogging", "PUT": "PutBucketLogging"},
    "tagging": {"GET": "GetBucketTagging", "PUT": "PutBucketTagging", "DELETE": "PutBucketTagging"},
    "object-lock": {"GET": "GetBucketObjectLockConfiguration", "PUT": "PutBucketObjectLockConfiguration"},
    "publicAccessBlock": {
        "GET": "GetBucketPublicAccessBlock",
        "PUT": "PutBucketPublicAccessBlock",
        "DELETE": "PutBucketPublicAccessBlock",
    },
    "ownershipControls": {
        "GET": "GetBucketOwnershipControls",
        "PUT": "PutBucketOwnershipControls",
        "DELETE": "PutBucketOwnershipControls",
    },
    "website": {"GET": "GetBucketWebsite", "PUT": "PutBucketWebsite", "DELETE": "DeleteBucketWebsite"},
    "replication": {
        "GET": "GetReplicationConfiguration",
        "PUT": "PutReplicationConfiguration",
        "DELETE": "PutReplicationConfiguration",
    },
    "accelerate": {"GET": "GetAccelerateConfiguration", "PUT": "PutAccelerateConfiguration"},
    "requestPayment": {"GET": "GetBucketRequestPayment", "PUT": "PutBucketRequestPayment"},
    "versions": {"GET": "ListBucketVersions"},
    "uploads": {"GET": "ListBucketMultipartUploads"},
    "intelligent-tiering": {"GET": "GetIntelligentTieringConfiguration", "PUT": "PutIntelligentTieringConfiguration"},
    "inventory": {"GET": "GetInventoryConfiguration", "PUT": "PutInventoryConfiguration"},
    "metrics": {"GET": "GetMetricsConfiguration", "PUT": "PutMetricsConfiguration"},
    "analytics": {"GET": "GetAnalyticsConfiguration", "PUT": "PutAnalyticsConfiguration"},
}
# (sub-resource) -> (IAM name, whether IAM has a "Version" form of it)
_KEY_SUBRESOURCES = {
    "retention": ("ObjectRetention", False),
    "legal-hold": ("ObjectLegalHold", False),
    "tagging": ("ObjectTagging", True),
    "acl": ("ObjectAcl", True),
    "attributes": ("ObjectAttributes", True),
    "torrent": ("ObjectTorrent", True),
}
# Request parameters: never a sub-resource.
_PARAMETERS = {
    "versionId", "prefix", "delimiter", "list-type", "max-keys", "marker", "continuation-token", "start-after",
    "encoding-type", "fetch-owner", "key-marker", "version-id-marker", "uploadId", "partNumber", "max-uploads",
    "upload-id-marker", "max-parts", "part-number-marker", "x-id", "id", "delete", "uploads", "restore", "select",
    "select-type", "expected-bucket-owner", "optional-object-attributes", "AWSAccessKeyId", "Signature", "Expires",
}  # fmt: skip


class UnmappedRequest(Exception):
    """An S3 request the local cloud cannot name as IAM actions; it is refused, never guessed."""


@dataclass(frozen=True)
class S3Request:
    method: str
    bucket: str | None
    key: str | None
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    @classmethod
    def of(cls, method: str, full_url: str, bucket: str | None, key: str | None, headers: Any, body: Any) -> S3Request:
        query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
        raw = body if isinstance(body, bytes) else (body or "").encode() if isinstance(body, str) else b""
        return cls(method, bucket, key, query, {k.lower(): v for k, v in headers.items()}, raw)


def s3_needs(request: S3Request) -> list[Need]:
    """Every (action, resource, condition keys) the request needs, in IAM's names."""
    if not request.bucket:
        if request.method == "GET":
            return [Need("s3:ListAllMyBuckets", "*")]
        raise UnmappedRequest(f"{request.method} without a bucket")
    subresources = [
        q for q in request.query if q not in _PARAMETERS and not q.startswith(("X-Amz-", "x-amz-", "response-"))
    ]
    if request.key:
        return _object_needs(request, subresources)
    return _bucket_needs(request, subresources)


def _object_needs(request: S3Request, subresources: list[str]) -> list[Need]:
    method, query, headers = request.method, request.query, request.headers
    resource = f"arn:aws:s3:::{request.bucket}/{request.key}"
    versioned = "versionId" in query
    context = _context(request)
    unknown = [s for s in subresources if s not in _KEY_SUBRESOURCES]
    if unknown:
        raise UnmappedRequest(f"{method} ?{unknown[0]} on an object")
    sub = subresources[0] if subresources else None
    bypass = headers.get("x-amz-bypass-governance-retention", "").lower() == "true"

    def named(verb: str, name: str, has_version: bool) -> Need:
        # IAM's version forms put "Version" after "Object": GetObjectVersion, PutObjectVersionTagging, ...
        if versioned and has_version:
            name = "ObjectVersion" + name.removeprefix("Object")
        return Need(f"s3:{verb}{name}", resource, context)

    if sub:
        name, has_version = _KEY_SUBRESOURCES[sub]
        if method in ("GET", "HEAD"):
            return [named("Get", name, has_version)]
        if method == "DELETE" and sub == "tagging":
            return [named("Delete", name, has_version)]
        if method == "PUT":
            result = [named("Put", name, has_version)]
            return [*result, Need("s3:BypassGovernanceRetention", resource, context)] if bypass else result
        raise UnmappedRequest(f"{method} ?{sub} on an object")
    if method in ("GET", "HEAD"):
        if "uploadId" in query:
            return [Need("s3:ListMultipartUploadParts", resource, context)]
        return [named("Get", "Object", True)]
    if method == "DELETE":
        if "uploadId" in query:
            return [Need("s3:AbortMultipartUpload", resource, context)]
        result = [named("Delete", "Object", True)]
        return [*result, Need("s3:BypassGovernanceRetention", resource, context)] if bypass else result
    if method == "POST" and ("restore" in query or "select" in query):
        return [Need("s3:RestoreObject" if "restore" in query else "s3:GetObject", resource, context)]
    if method in ("PUT", "POST"):
        result = [Need("s3:PutObject", resource, context)]
        if headers.get("x-amz-tagging") and not (method == "PUT" and "uploadId" in query):
            result.append(Need("s3:PutObjectTagging", resource, context))
        source = headers.get("x-amz-copy-source")
        if source:
            path, _, version = unquote(source).lstrip("/").partition("?versionId=")
            source_bucket, _, source_key = path.partition("/")
            action = "s3:GetObjectVersion" if version else "s3:GetObject"
            result.append(Need(action, f"arn:aws:s3:::{source_bucket}/{source_key}", context))
        return result
    raise UnmappedRequest(f"{method} on an object")


def _bucket_needs(request: S3Request, subresources: list[str]) -> list[Need]:
    method, query, headers = request.method, request.query, request.headers
    resource = f"arn:aws:s3:::{request.bucket}"
    context = _context(request)
    if method == "POST" and "delete" in query:
        bypass = headers.get("x-amz-bypass-governance-retention", "").lower() == "true"
        keys = re.findall(rb"<Key>([^<]*)</Key>\s*(?:<VersionId>([^<]*)</VersionId>)?", request.body or b"")
        result = []
        for key, version in keys:
            arn = f"{resource}/{_xml_unescape(key.decode())}"
            result.append(Need("s3:DeleteObjectVersion" if version else "s3:DeleteObject", arn, context))
            if bypass:
                result.append(Need("s3:BypassGovernanceRetention", arn, context))
        return result
    if "uploads" in query and method == "GET":  # a request parameter elsewhere, ListMultipartUploads here
        subresources = ["uploads", *subresources]
    unknown = [s for s in subresources if s not in _BUCKET_SUBRESOURCES or method not in _BUCKET_SUBRESOURCES[s]]
    if unknown:
        raise UnmappedRequest(f"{method} ?{unknown[0]} on a bucket")
    if subresources:
        return [Need(f"s3:{_BUCKET_SUBRESOURCES[subresources[0]][method]}", resource, context)]
    if method in ("GET", "HEAD"):
        return [Need("s3:ListBucket", resource, context)]
    if method == "DELETE":
        return [Need("s3:DeleteBucket", resource, context)]
    if method == "PUT":
        result = [Need("s3:CreateBucket", resource, context)]
        if headers.get("x-amz-bucket-object-lock-enabled", "").lower() == "true":
            result += [
                Need(f"s3:{a}", resource, context) for a in ("PutBucketObjectLockConfiguration", "PutBucketVersioning")
            ]
        if headers.get("x-amz-object-ownership"):
            result.append(Need("s3:PutBucketOwnershipControls", resource, context))
        return result
    raise UnmappedRequest(f"{method} on a bucket")


def _xml_unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def _context(request: S3Request) -> dict[str, Any]:
    headers, query = request.headers, request.query
    context: dict[str, Any] = {}
    for param, key in (("versionId", "s3:versionid"), ("prefix", "s3:prefix"), ("delimiter", "s3:delimiter")):
        if param in query:
            context[key] = query[param][0]
    if "max-keys" in query:
        context["s3:max-keys"] = query["max-keys"][0]
    for header, key in (
        ("x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"),
        ("x-amz-server-side-encryption-aws-kms-key-id", "s3:x-amz-server-side-encryption-aws-kms-key-id"),
        ("x-amz-object-lock-mode", "s3:object-lock-mode"),
        ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
        ("x-amz-copy-source", "s3:x-amz-copy-source"),
        ("x-amz-metadata-directive", "s3:x-amz-metadata-directive"),
        ("x-amz-acl", "s3:x-amz-acl"),
    ):
        if header in headers:
            context[key] = headers[header]
    until = headers.get("x-amz-object-lock-retain-until-date")
    mode = None
    if "retention" in query and request.method == "PUT":
        body = request.body.decode(errors="replace")
        mode = _xml_value(body, "Mode")
        until = _xml_value(body, "RetainUntilDate")
        if mode:
            context["s3:object-lock-mode"] = mode
    if "legal-hold" in query and request.method == "PUT":
        status = _xml_value(request.body.decode(errors="replace"), "Status")
        if status:
            context["s3:object-lock-legal-hold"] = status
    if until:
        moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
        context["s3:object-lock-retain-until-date"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        remaining = moment - datetime.now(UTC)
        context["s3:object-lock-remaining-retention-days"] = str(max(0, -(-remaining // timedelta(days=1))))
    if headers.get("x-amz-tagging"):
        context["s3:RequestObjectTagKeys"] = sorted(parse_qs(headers["x-amz-tagging"], keep_blank_values=True))
    return context


def _xml_value(body: str, element: str) -> str | None:
    match = re.search(rf"<{element}>([^<]*)</{element}>", body)
    return match.group(1).strip() if match else None

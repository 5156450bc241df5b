"""S3 Object Lock and metadata rules moto does not enforce (gap 15).

15. Object Lock and user metadata. moto lets PutObjectRetention shorten or remove a COMPLIANCE retention and
   turn COMPLIANCE into GOVERNANCE (GUIDE.md section 6), shorten a GOVERNANCE retention without the bypass
   header, suspend versioning on a bucket with Object Lock, and store any amount of user metadata. AWS refuses
   all of these: a COMPLIANCE retention in force can be extended (a later RetainUntilDate, mode COMPLIANCE) by
   no one but shortened, removed or changed to GOVERNANCE by no one, the account root included (AccessDenied);
   a GOVERNANCE retention in force can be shortened or removed only with `x-amz-bypass-governance-retention:
   true` (its s3:BypassGovernanceRetention permission is checked by authz.py) and made COMPLIANCE by anyone
   allowed s3:PutObjectRetention; versioning of an Object Lock bucket cannot be suspended (InvalidBucketState,
   409); user metadata, the UTF-8 bytes of each key (after `x-amz-meta-`) and value summed, is limited to 2 KB
   (MetadataTooLarge, 400). Here each of these is refused with S3's error before moto changes anything.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

METADATA_LIMIT = 2048  # bytes: S3's 2 KB of user-defined metadata
_state = threading.local()  # bypass: the request being served carries x-amz-bypass-governance-retention: true


def install(cloud: LocalCloud) -> None:
    from moto.s3.exceptions import AccessDeniedByLock
    from moto.s3.models import S3Backend

    from localcloud.services.s3 import s3_error

    original_retention = S3Backend.put_object_retention
    original_versioning = S3Backend.put_bucket_versioning

    def put_object_retention(
        self: Any, bucket_name: str, key_name: str, version_id: str | None, retention: tuple[Any, Any]
    ) -> None:
        key = self.get_object(bucket_name, key_name, version_id=version_id)
        if key is not None:
            refusal = retention_change_refused(key.lock_mode, key.lock_until, retention[0], retention[1], bypass())
            if refusal:
                cloud.record(
                    {"kind": "s3-object-lock-refused", "bucket": bucket_name, "key": key_name, "reason": refusal}
                )
                raise AccessDeniedByLock()
        original_retention(self, bucket_name, key_name, version_id, retention)

    def put_bucket_versioning(self: Any, bucket_name: str, status: str) -> None:
        if self.get_bucket(bucket_name).object_lock_enabled and status != "Enabled":
            raise s3_error(
                "InvalidBucketState",
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
                409,
            )
        original_versioning(self, bucket_name, status)

    S3Backend.put_object_retention = put_object_retention
    S3Backend.put_bucket_versioning = put_bucket_versioning


def set_bypass(value: bool) -> None:
    _state.bypass = value


def bypass() -> bool:
    return bool(getattr(_state, "bypass", False))


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def retention_change_refused(mode: Any, until: Any, new_mode: Any, new_until: Any, bypass: bool) -> str:
    """Why S3 refuses to change a version's retention (mode, until) to (new_mode, new_until); "" if it does not."""
    current = _moment(until)
    if not mode or current is None or current <= datetime.now(UTC):
        return ""  # no retention in force
    wanted = _moment(new_until)
    if mode == "COMPLIANCE":
        if new_mode != "COMPLIANCE":
            return "a COMPLIANCE retention cannot be removed or changed to another mode"
        if wanted is None or wanted < current:
            return "a COMPLIANCE retention cannot be shortened"
        return ""
    if mode == "GOVERNANCE" and not bypass and (not new_mode or wanted is None or wanted < current):
        return "shortening or removing a GOVERNANCE retention needs x-amz-bypass-governance-retention"
    return ""


def metadata_too_large(headers: Any) -> bool:
    """Whether the request's user metadata (x-amz-meta-* headers) exceeds S3's 2 KB."""
    size = 0
    for name, value in headers.items():
        if name.lower().startswith("x-amz-meta-"):
            size += len(name[len("x-amz-meta-") :].encode()) + len(str(value).encode())
    return size > METADATA_LIMIT

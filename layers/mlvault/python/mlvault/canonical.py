"""Canonical forms that digests and signatures are computed over: JSON, and S3 object versions as URIs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

# RFC 3986 path characters kept as they are: only ?, #, %, spaces, controls and non-ASCII are percent-encoded
_PATH_SAFE = "/!$&'()*+,;=:@"


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes that digests are computed over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True, order=True)
class ObjectVersion:
    """One exact version of one S3 object: what mlvault pins, records and compares (never a key alone)."""

    bucket: str
    key: str
    version_id: str

    @property
    def uri(self) -> str:
        """s3://bucket/key?versionId=v; in the key, what would end or break a URI path is percent-encoded."""
        return f"s3://{self.bucket}/{quote(self.key, safe=_PATH_SAFE)}?versionId={quote(self.version_id, safe='')}"

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str) -> ObjectVersion:
        """The object version a versioned S3 URI names; ValueError for anything else."""
        parts = urlsplit(uri)
        versions = parse_qs(parts.query, strict_parsing=bool(parts.query)).get("versionId", [])
        if parts.scheme != "s3" or not parts.netloc or not parts.path.lstrip("/") or len(versions) != 1:
            raise ValueError(f"expected s3://bucket/key?versionId=..., got {uri!r}")
        return cls(parts.netloc, unquote(parts.path[1:]), versions[0])


def versioned_uri(bucket: str, key: str, version_id: str) -> str:
    return ObjectVersion(bucket, key, version_id).uri

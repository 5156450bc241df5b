"""Verifying a request's Signature Version 4 where the local cloud knows the secret (gap 25: function URLs).

The local cloud knows every secret its callers sign with: the developer's and every role's local key
(`server.SECRET`), and the sessions STS issued (moto keeps their secret and session token). `verify` recomputes the
signature of a request, from the Authorization header or a presigned URL's X-Amz-* query parameters, as the SigV4
specification defines it for services other than S3 (the canonical request of the URI-encoded path, the sorted
query, the signed headers and the payload's SHA-256, a presigned URL's too), and refuses what AWS refuses, with its
error code and message: no signature (AccessDeniedException "Forbidden", as a function URL answers), an unknown key
or a session token that is not the session's (UnrecognizedClientException), an expired session
(ExpiredTokenException), a credential scoped to another service or region, a signature older than 5 minutes (or a
presigned URL past its X-Amz-Expires), or a signature that differs (InvalidSignatureException).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
SKEW = timedelta(minutes=5)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)


class SignatureRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Secret:
    secret_access_key: str
    session_token: str | None = None  # required, and must match, for an STS session
    expires: datetime | None = None


@dataclass(frozen=True)
class Signed:
    access_key: str
    region: str
    service: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_path(raw_path: str) -> str:
    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(raw_path or "/"), safe="/~")


def _canonical_query(raw_query: str, *, without: str = "") -> str:
    pairs = []
    for pair in raw_query.split("&") if raw_query else []:
        key, _, value = pair.partition("=")
        if unquote(key) == without:
            continue
        pairs.append((_encode(unquote(key)), _encode(unquote(value))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _amz_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        message = f"Date must be in ISO-8601 'basic format'. Got '{text}'."
        raise SignatureRefused("IncompleteSignatureException", message) from None


def _parts(headers: Mapping[str, str], query: Mapping[str, str]) -> dict[str, str] | None:
    authorization = headers.get("authorization", "")
    if authorization:
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != ALGORITHM:
            raise SignatureRefused("IncompleteSignatureException", f"Unsupported AWS 'algorithm': '{algorithm}'")
        fields = {}
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        if not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
            raise SignatureRefused(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
            )
        return {
            "credential": fields["Credential"],
            "signed_headers": fields["SignedHeaders"],
            "signature": fields["Signature"],
            "date": headers.get("x-amz-date", ""),
            "token": headers.get("x-amz-security-token", ""),
            "presigned": "",
        }
    if "X-Amz-Signature" in query:
        return {
            "credential": query.get("X-Amz-Credential", ""),
            "signed_headers": query.get("X-Amz-SignedHeaders", ""),
            "signature": query["X-Amz-Signature"],
            "date": query.get("X-Amz-Date", ""),
            "token": query.get("X-Amz-Security-Token", ""),
            "presigned": query.get("X-Amz-Expires", "0"),
        }
    return None


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    service: str,
    region: str,
    secret_of: Callable[[str], Secret | None],
    now: datetime | None = None,
) -> Signed:
    """The access key a request is validly signed with for `service` in `region`; SignatureRefused otherwise.
    `headers` are keyed by lower-case name (repeated headers joined with ","), `raw_path` and `raw_query` as sent."""
    from urllib.parse import parse_qsl

    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    parts = _parts(headers, query)
    if parts is None:
        raise SignatureRefused("AccessDeniedException", "Forbidden")
    access_key, _, scope = parts["credential"].partition("/")
    scope_parts = scope.split("/")
    if len(scope_parts) != 4 or scope_parts[3] != "aws4_request":
        raise SignatureRefused("IncompleteSignatureException", f"Credential is not well formed: {parts['credential']}")
    day, scope_region, scope_service, _ = scope_parts
    if scope_service != service:
        message = f"Credential should be scoped to correct service: '{service}'."
        raise SignatureRefused("InvalidSignatureException", message)
    if scope_region != region:
        raise SignatureRefused("InvalidSignatureException", "Credential should be scoped to a valid region.")
    secret = secret_of(access_key)
    if secret is None or (secret.session_token or "") != parts["token"]:
        raise SignatureRefused("UnrecognizedClientException", "The security token included in the request is invalid.")
    now = now or datetime.now(UTC)
    if secret.expires is not None and secret.expires <= now:
        raise SignatureRefused("ExpiredTokenException", "The security token included in the request is expired")
    signed_at = _amz_date(parts["date"])
    if not signed_at.strftime("%Y%m%d") == day:
        raise SignatureRefused(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{day}' != '{signed_at:%Y%m%d}'",
        )
    late = signed_at + (timedelta(seconds=int(parts["presigned"])) if parts["presigned"] else SKEW)
    if late < now or signed_at - SKEW > now:
        stamp = f"{now:%Y%m%dT%H%M%SZ}"
        raise SignatureRefused(
            "InvalidSignatureException",
            f"Signature expired: {parts['date']} is now earlier than {(now - SKEW):%Y%m%dT%H%M%SZ} ({stamp} - 5 min.)",
        )
    names = parts["signed_headers"].split(";")
    if "host" not in names:
        raise SignatureRefused(
            "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in names)
    payload = hashlib.sha256(body).hexdigest()  # UNSIGNED-PAYLOAD is S3's alone
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_path(raw_path),
            _canonical_query(raw_query, without="X-Amz-Signature" if parts["presigned"] else ""),
            canonical_headers,
            parts["signed_headers"],
            payload,
        ]
    )
    to_sign = "\n".join([ALGORITHM, parts["date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret.secret_access_key).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["signature"]):
        raise SignatureRefused("InvalidSignatureException", MISMATCH)
    return Signed(access_key=access_key, region=region, service=service)

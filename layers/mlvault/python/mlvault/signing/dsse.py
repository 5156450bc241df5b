"""DSSE (secure-systems-lab/dsse v1): pre-authentication encoding and the JSON envelope.

Parsing follows the spec's envelope.md and protocol.md: `payload`, `payloadType`, `signatures` and each
signature's `sig` are required (and may be empty), `keyid` is optional (unset is the same as empty), unrecognized
fields are ignored, and `payload` and `sig` are RFC 4648 Base64 in either the standard (section 4) or the URL-safe
(section 5) alphabet. Strict where the spec leaves room for two readings: one alphabet per value, the padding RFC
4648 requires, canonical (zero) pad bits, no whitespace or other characters, and no duplicate JSON field names
(two parsers could disagree on which one counts). mlvault's own policy on top (docs/signing.md): the in-toto
payload type and exactly one signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from mlvault.errors import IngestReason, VerificationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STANDARD, URL_SAFE = "standard", "url-safe"
_ALPHABETS = {
    STANDARD: re.compile(r"[A-Za-z0-9+/]*"),
    URL_SAFE: re.compile(r"[A-Za-z0-9_-]*"),
}


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def b64decode_strict(text: str, alphabet: str) -> bytes:
    """RFC 4648 Base64 of one alphabet (STANDARD or URL_SAFE), exactly as the RFC writes it: padded to a
    multiple of 4 with "=", zero pad bits, nothing else. ValueError (saying what is wrong) otherwise."""
    body = text.rstrip("=")
    if not _ALPHABETS[alphabet].fullmatch(body):
        bad = next(c for c in body if not _ALPHABETS[alphabet].fullmatch(c))
        raise ValueError(f"{bad!r} is not a character of the {alphabet} base64 alphabet")
    if len(text) % 4 or len(text) - len(body) > 2:
        raise ValueError("is not padded to a multiple of 4 characters with '=' as RFC 4648 requires")
    standard = body.translate(str.maketrans("-_", "+/")) + "=" * (len(text) - len(body))
    try:
        data = base64.b64decode(standard, validate=True)
    except binascii.Error as err:
        raise ValueError(f"is not base64: {err}") from None
    if base64.b64encode(data).decode() != standard:
        raise ValueError("is not in canonical form (non-zero pad bits or padding)")
    return data


def b64decode_dsse(text: str) -> bytes:
    """DSSE's Base64: the standard or the URL-safe alphabet (protocol.md: verifiers MUST accept either)."""
    errors = []
    for alphabet in (STANDARD, URL_SAFE):
        try:
            return b64decode_strict(text, alphabet)
        except ValueError as err:
            errors.append(f"{alphabet}: {err}")
    raise ValueError("; ".join(errors))


def json_object(text: str | bytes) -> Any:
    """JSON whose objects have unique field names (json.loads keeps the last of two, other parsers the first)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in items]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate field {duplicates[0]!r}")
        return dict(items)

    return json.loads(text, object_pairs_hook=pairs)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    keyid: str  # "" when the envelope has none (DSSE: optional, unauthenticated)
    signature: bytes

    def to_json(self) -> str:
        signature = {"sig": base64.b64encode(self.signature).decode()}
        if self.keyid:
            signature["keyid"] = self.keyid
        return json.dumps(
            {
                "payloadType": self.payload_type,
                "payload": base64.b64encode(self.payload).decode(),
                "signatures": [signature],
            },
            separators=(",", ":"),
            sort_keys=True,
        )


def _malformed(detail: str) -> VerificationError:
    return VerificationError(IngestReason.MALFORMED_ENVELOPE, detail)


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _malformed(f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        return b64decode_dsse(value)
    except ValueError as err:
        raise _malformed(f"{what} is not RFC 4648 base64 ({err})") from None


def parse_envelope(text: str) -> Envelope:
    """Parse a DSSE JSON envelope with exactly one signature. Structure only: nothing is trusted yet."""
    try:
        data = json_object(text)
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise _malformed(f"envelope is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise _malformed("envelope is not a JSON object")
    missing = [name for name in ("payloadType", "payload", "signatures") if name not in data]
    if missing:
        raise _malformed(f"envelope lacks {', '.join(missing)} (required by DSSE)")
    if data["payloadType"] != PAYLOAD_TYPE:
        raise _malformed(f"payloadType must be {PAYLOAD_TYPE!r}, got {data['payloadType']!r}")
    signatures = data["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise _malformed("envelope must carry exactly one signature")
    signature = signatures[0]
    if "sig" not in signature:
        raise _malformed("the signature lacks sig (required by DSSE)")
    keyid = signature.get("keyid")
    if keyid is not None and not isinstance(keyid, str):
        raise _malformed(f"keyid must be a string, got {type(keyid).__name__}")
    return Envelope(
        payload_type=data["payloadType"],
        payload=_b64(data["payload"], "payload"),
        keyid=keyid or "",
        signature=_b64(signature["sig"], "sig"),
    )

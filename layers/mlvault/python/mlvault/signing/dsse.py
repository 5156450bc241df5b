"""DSSE (secure-systems-lab/dsse v1): pre-authentication encoding and the JSON envelope."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from mlvault.errors import IngestReason, VerificationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    keyid: str
    signature: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "payloadType": self.payload_type,
                "payload": base64.b64encode(self.payload).decode(),
                "signatures": [{"keyid": self.keyid, "sig": base64.b64encode(self.signature).decode()}],
            },
            separators=(",", ":"),
            sort_keys=True,
        )


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(IngestReason.MALFORMED_ENVELOPE, f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(IngestReason.MALFORMED_ENVELOPE, f"{what} is not valid base64") from None


def parse_envelope(text: str) -> Envelope:
    """Parse a DSSE JSON envelope with exactly one signature. Structure only: nothing is trusted yet."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationError(IngestReason.MALFORMED_ENVELOPE, "envelope is not JSON") from None
    if not isinstance(data, dict) or set(data) != {"payloadType", "payload", "signatures"}:
        raise VerificationError(
            IngestReason.MALFORMED_ENVELOPE, "envelope must have exactly payloadType, payload and signatures"
        )
    if data["payloadType"] != PAYLOAD_TYPE:
        raise VerificationError(
            IngestReason.MALFORMED_ENVELOPE, f"payloadType must be {PAYLOAD_TYPE!r}, got {data['payloadType']!r}"
        )
    signatures = data["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise VerificationError(IngestReason.MALFORMED_ENVELOPE, "envelope must carry exactly one signature")
    keyid = signatures[0].get("keyid")
    if not isinstance(keyid, str) or not keyid:
        raise VerificationError(IngestReason.MALFORMED_ENVELOPE, "signature has no keyid")
    return Envelope(
        payload_type=data["payloadType"],
        payload=_b64(data["payload"], "payload"),
        keyid=keyid,
        signature=_b64(signatures[0].get("sig"), "signature"),
    )

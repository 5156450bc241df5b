"""Regenerate the golden upload vectors (python -m tests.vectors.generate). Committed output:
tests/vectors/uploads.json; each vector names the outcome every conforming verifier must reach."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from mlvault.ingest.protocol import METADATA_KEY, Claim, encode_metadata, sign
from mlvault.signing.dsse import PAYLOAD_TYPE, Envelope, pae
from mlvault_tools.testkeys import signer

UPLOAD_TIME = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BODY = b"sepal_length,species\n5.1,setosa\n4.9,setosa\n"
KEY = "producers/acme/iris/batch-0001.csv"


def claim(**changes) -> Claim:
    base = Claim(
        object_key=KEY,
        sha256=hashlib.sha256(BODY).hexdigest(),
        producer="acme",
        dataset="iris",
        contract_version="1",
        size=len(BODY),
        nonce="00112233445566778899aabbccddeeff",
        issued_at="2026-06-01T11:30:00Z",
        expires_at="2026-06-01T12:30:00Z",
    )
    return replace(base, **changes)


def metadata(envelope: Envelope) -> dict[str, str]:
    return {METADATA_KEY: encode_metadata(envelope)}


def raw(text: str) -> dict[str, str]:
    return {METADATA_KEY: base64.urlsafe_b64encode(text.encode()).decode()}


def vectors() -> list[dict]:
    acme = signer("acme-p256")
    good = sign(claim(), acme)
    tampered = replace(good, payload=good.payload.replace(b'"size":43', b'"size":44'))
    two = json.loads(good.to_json())
    two["signatures"].append(two["signatures"][0])
    out = [
        ("valid-ecdsa-p256", KEY, BODY, metadata(good), "ACCEPT"),
        ("valid-ed25519", KEY, BODY, metadata(sign(claim(), signer("acme-ed25519"))), "ACCEPT"),
        ("missing-signature", KEY, BODY, {}, "MISSING_SIGNATURE"),
        ("envelope-not-base64", KEY, BODY, {METADATA_KEY: "%%%not-base64%%%"}, "MALFORMED_ENVELOPE"),
        ("envelope-not-json", KEY, BODY, raw("not json"), "MALFORMED_ENVELOPE"),
        (
            "wrong-payload-type",
            KEY,
            BODY,
            raw(good.to_json().replace(PAYLOAD_TYPE, "text/plain")),
            "MALFORMED_ENVELOPE",
        ),
        ("two-signatures", KEY, BODY, raw(json.dumps(two)), "MALFORMED_ENVELOPE"),
        ("oversized-envelope", KEY, BODY, {METADATA_KEY: "A" * 1801}, "ENVELOPE_TOO_LARGE"),
        (
            "key-outside-producer-layout",
            "uploads/batch.csv",
            BODY,
            metadata(sign(claim(object_key="uploads/batch.csv"), acme)),
            "INVALID_OBJECT_KEY",
        ),
        (
            "unknown-producer",
            "producers/initech/iris/batch-0001.csv",
            BODY,
            metadata(sign(claim(object_key="producers/initech/iris/batch-0001.csv", producer="initech"), acme)),
            "UNKNOWN_PRODUCER",
        ),
        ("unknown-key", KEY, BODY, metadata(sign(claim(), signer("mallory-p256"))), "UNKNOWN_KEY"),
        (
            "other-producers-key",
            KEY,
            BODY,
            metadata(replace(sign(claim(), signer("globex-p256")), keyid="acme-p256")),
            "INVALID_SIGNATURE",
        ),
        ("expired-key", KEY, BODY, metadata(sign(claim(), signer("acme-old-p256"))), "KEY_EXPIRED"),
        ("tampered-payload", KEY, BODY, metadata(tampered), "INVALID_SIGNATURE"),
        (
            "subject-mismatch",
            KEY,
            BODY,
            metadata(sign(claim(object_key="producers/acme/iris/other.csv"), acme)),
            "SUBJECT_MISMATCH",
        ),
        ("producer-mismatch", KEY, BODY, metadata(sign(claim(producer="globex"), acme)), "PRODUCER_MISMATCH"),
        ("dataset-mismatch", KEY, BODY, metadata(sign(claim(dataset="sales"), acme)), "DATASET_MISMATCH"),
        (
            "dataset-not-allowed",
            "producers/acme/weather/batch-0001.csv",
            BODY,
            metadata(sign(claim(object_key="producers/acme/weather/batch-0001.csv", dataset="weather"), acme)),
            "DATASET_NOT_ALLOWED",
        ),
        (
            "signed-in-the-future",
            KEY,
            BODY,
            metadata(sign(claim(issued_at="2026-06-01T13:00:00Z", expires_at="2026-06-01T14:00:00Z"), acme)),
            "FUTURE_SIGNATURE",
        ),
        (
            "expired-signature",
            KEY,
            BODY,
            metadata(sign(claim(issued_at="2026-06-01T10:00:00Z", expires_at="2026-06-01T11:00:00Z"), acme)),
            "STALE_SIGNATURE",
        ),
        (
            "validity-too-long",
            KEY,
            BODY,
            metadata(sign(claim(issued_at="2026-06-01T00:00:00Z", expires_at="2026-06-03T00:00:00Z"), acme)),
            "STALE_SIGNATURE",
        ),
        (
            "malformed-statement",
            KEY,
            BODY,
            metadata(
                Envelope(
                    payload_type=PAYLOAD_TYPE,
                    payload=b'{"_type":"x"}',
                    keyid="acme-p256",
                    signature=acme.sign(pae(PAYLOAD_TYPE, b'{"_type":"x"}')),
                )
            ),
            "MALFORMED_STATEMENT",
        ),
        (
            "revoked-key",
            KEY,
            BODY,
            metadata(sign(claim(), signer("acme-ed25519"))),
            "KEY_REVOKED",
            {"acme-ed25519": "2026-06-01T11:59:59Z"},
        ),
        (
            "revoked-after-the-upload",
            KEY,
            BODY,
            metadata(sign(claim(), signer("acme-ed25519"))),
            "ACCEPT",
            {"acme-ed25519": "2026-06-01T12:00:01Z"},
        ),
        ("size-mismatch", KEY, BODY + b"5.0,setosa\n", metadata(good), "SIZE_MISMATCH"),
        ("digest-mismatch", KEY, BODY.replace(b"4.9", b"9.4"), metadata(good), "DIGEST_MISMATCH"),
    ]
    return [
        {
            "name": name,
            "object_key": key,
            "body_base64": base64.b64encode(body).decode(),
            "metadata": meta,
            "upload_time": UPLOAD_TIME.isoformat().replace("+00:00", "Z"),
            "revoked": rest[0] if rest else {},
            "expected": expected,
        }
        for name, key, body, meta, expected, *rest in out
    ]


def main() -> None:
    path = Path(__file__).with_name("uploads.json")
    path.write_text(json.dumps({"registry": "trust/dev.json", "vectors": vectors()}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

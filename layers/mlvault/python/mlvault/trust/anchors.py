"""The trust anchors bundled with a function's code (`trust/anchors.json`, mlvault.wiring.Bundle.ANCHORS): whom the
model functions trust, covered by the code's signature, never taken from configuration.

    {"stage": "dev",
     "model_signing_key": {"arn": "arn:aws:kms:<region>:<account>:key/<id>",
                           "public_key_sha256": "<hex SHA-256 of the key's SubjectPublicKeyInfo PEM>"},
     "alarms": {"rollback": ["<alarm name>", ...], "canary": ["<alarm name>", ...]}}

- `model_signing_key`: the only key that may sign models (the sign step), and the only one a model may be signed
  by to be deployed, rolled back to or served. Its `public_key_sha256` is the SHA-256 of the PEM that
  `mlvault.attestation.openssf.kms_public_key_pem` renders from KMS GetPublicKey (the OpenSSF bundle's
  `publicKey.hint`): a KMS key whose public key hashes to anything else is refused (SIGNING_KEY_NOT_TRUSTED), so
  even a key policy or alias change cannot substitute another key.
- `alarms.rollback`: the alarms whose state changes the rollback function acts on (any other is ignored);
  `alarms.canary`: the alarms whose history over a canary's bake decides whether it is promoted.

The file is written into each signed bundle at deploy time (the key's ARN and public key exist only once the key
does). `load_anchors` fails closed with a stable code (mlvault.errors.AnchorReason): the file missing
(ANCHORS_MISSING), any field missing, of the wrong type or unknown (ANCHORS_MALFORMED), a key named by an alias or
a key id instead of a key ARN (SIGNING_KEY_NOT_PINNED: an alias can be repointed), anchors of another stage than
the function's (ANCHORS_WRONG_STAGE). Standard library only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlvault.errors import AnchorReason, ServeReason, TrustAnchorError
from mlvault.trust.bundled_json import BundledDocument
from mlvault.wiring import Anchor, Bundle

DOCUMENT = BundledDocument(Bundle.ANCHORS, AnchorReason.ANCHORS_MISSING, AnchorReason.ANCHORS_MALFORMED)
KMS_KEY_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:kms:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:key/(?:mrk-[0-9a-f]{32}|[0-9a-f-]{36})"
)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FIELDS = {Anchor.STAGE, Anchor.MODEL_SIGNING_KEY, Anchor.ALARMS}
_KEY_FIELDS = {Anchor.KEY_ARN, Anchor.PUBLIC_KEY_SHA256}
_ALARM_FIELDS = {Anchor.ROLLBACK_ALARMS, Anchor.CANARY_ALARMS}


@dataclass(frozen=True)
class SigningKey:
    """The model-signing key: a KMS key ARN and the SHA-256 of its public key (SPKI PEM)."""

    arn: str
    public_key_sha256: str

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    def fingerprint_of(self, public_key_pem: bytes) -> str:
        return hashlib.sha256(public_key_pem).hexdigest()

    def trusts(self, public_key_pem: bytes) -> bool:
        """Whether this PEM is the anchored public key."""
        return self.fingerprint_of(public_key_pem) == self.public_key_sha256


@dataclass(frozen=True)
class TrustAnchors:
    stage: str
    model_signing_key: SigningKey
    rollback_alarms: tuple[str, ...]
    canary_alarms: tuple[str, ...]


def load_anchors(path: Path, *, stage: str) -> TrustAnchors:
    """The anchors bundled at `path`, for a function of `stage`; TrustAnchorError otherwise."""
    return _anchors(DOCUMENT.read(path), stage=stage)


def parse_anchors(data: bytes, *, stage: str) -> TrustAnchors:
    return _anchors(DOCUMENT.parse(data), stage=stage)


def _anchors(document: Any, *, stage: str) -> TrustAnchors:
    body = DOCUMENT.fields(document, _FIELDS, "")
    if not isinstance(body["stage"], str) or not body["stage"]:
        DOCUMENT.fail("stage", f"expected the stage's name, got {body['stage']!r}")
    if body["stage"] != stage:
        raise TrustAnchorError(
            AnchorReason.ANCHORS_WRONG_STAGE,
            f"the bundled anchors are of stage {body['stage']!r}, this function is of stage {stage!r}",
        )
    key = DOCUMENT.fields(body["model_signing_key"], _KEY_FIELDS, "model_signing_key")
    arn = key["arn"]
    if not isinstance(arn, str) or not KMS_KEY_ARN.fullmatch(arn):
        if isinstance(arn, str) and (arn.startswith("alias/") or ":alias/" in arn):
            raise TrustAnchorError(
                ServeReason.SIGNING_KEY_NOT_PINNED,
                f"model_signing_key.arn: expected a KMS key ARN, got the alias {arn!r}: an alias can be repointed",
            )
        DOCUMENT.fail(
            "model_signing_key.arn", f"expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got {arn!r}"
        )
    fingerprint = key["public_key_sha256"]
    if not isinstance(fingerprint, str) or not _SHA256_HEX.fullmatch(fingerprint):
        DOCUMENT.fail("model_signing_key.public_key_sha256", f"expected 64 lowercase hex digits, got {fingerprint!r}")
    alarms = DOCUMENT.fields(body["alarms"], _ALARM_FIELDS, "alarms")
    return TrustAnchors(
        stage=body["stage"],
        model_signing_key=SigningKey(arn, fingerprint),
        rollback_alarms=DOCUMENT.names(alarms["rollback"], "alarms.rollback"),
        canary_alarms=DOCUMENT.names(alarms["canary"], "alarms.canary"),
    )

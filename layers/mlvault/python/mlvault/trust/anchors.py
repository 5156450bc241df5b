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
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mlvault.errors import AnchorReason, ServeReason, TrustAnchorError
from mlvault.wiring import Anchor

MAX_ANCHORS_BYTES = 64 * 1024
KMS_KEY_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:kms:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:key/(?:mrk-[0-9a-f]{32}|[0-9a-f-]{36})"
)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ALARM_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
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
    try:
        with path.open("rb") as file:
            data = file.read(MAX_ANCHORS_BYTES + 1)
    except FileNotFoundError:
        raise TrustAnchorError(
            AnchorReason.ANCHORS_MISSING, f"no trust anchors at {path.name!r} in the function's bundle"
        ) from None
    return parse_anchors(data, stage=stage)


def parse_anchors(data: bytes, *, stage: str) -> TrustAnchors:
    if len(data) > MAX_ANCHORS_BYTES:
        _malformed("", f"expected at most {MAX_ANCHORS_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as err:
        _malformed("", f"expected a JSON object, got {err}")
    body = _object(document, _FIELDS, "")
    if not isinstance(body["stage"], str) or not body["stage"]:
        _malformed("stage", f"expected the stage's name, got {body['stage']!r}")
    if body["stage"] != stage:
        raise TrustAnchorError(
            AnchorReason.ANCHORS_WRONG_STAGE,
            f"the bundled anchors are of stage {body['stage']!r}, this function is of stage {stage!r}",
        )
    key = _object(body["model_signing_key"], _KEY_FIELDS, "model_signing_key")
    arn = key["arn"]
    if not isinstance(arn, str) or not KMS_KEY_ARN.fullmatch(arn):
        if isinstance(arn, str) and (arn.startswith("alias/") or ":alias/" in arn):
            raise TrustAnchorError(
                ServeReason.SIGNING_KEY_NOT_PINNED,
                f"model_signing_key.arn: expected a KMS key ARN, got the alias {arn!r}: an alias can be repointed",
            )
        _malformed(
            "model_signing_key.arn", f"expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got {arn!r}"
        )
    fingerprint = key["public_key_sha256"]
    if not isinstance(fingerprint, str) or not _SHA256_HEX.fullmatch(fingerprint):
        _malformed("model_signing_key.public_key_sha256", f"expected 64 lowercase hex digits, got {fingerprint!r}")
    alarms = _object(body["alarms"], _ALARM_FIELDS, "alarms")
    return TrustAnchors(
        stage=body["stage"],
        model_signing_key=SigningKey(arn, fingerprint),
        rollback_alarms=_names(alarms["rollback"], "alarms.rollback"),
        canary_alarms=_names(alarms["canary"], "alarms.canary"),
    )


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        _malformed(where, f"expected a non-empty list of alarm names, got {value!r}")
    for name in value:
        if not isinstance(name, str) or not _ALARM_NAME.fullmatch(name):
            _malformed(where, f"expected alarm names (1-255 printable characters), got {name!r}")
    if len(set(value)) != len(value):
        _malformed(where, f"expected each alarm once, got {value!r}")
    return tuple(value)


def _object(value: Any, fields: set[str], where: str) -> dict[str, Any]:
    label = where or "the anchors"
    if not isinstance(value, dict):
        _malformed(where, f"expected an object, got {type(value).__name__}")
    missing, unknown = fields - set(value), set(value) - fields
    if missing or unknown:
        _malformed(
            where,
            f"{label}: expected exactly the fields {sorted(fields)}, missing {sorted(missing)}, "
            f"unknown {sorted(unknown)}",
        )
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        _malformed("", f"duplicate fields {sorted({n for n in names if names.count(n) > 1})}")
    return dict(pairs)


def _malformed(where: str, detail: str) -> NoReturn:
    raise TrustAnchorError(AnchorReason.ANCHORS_MALFORMED, f"{where}: {detail}" if where else detail)

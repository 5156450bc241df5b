"""The stage's trust anchors, bundled into the signed code of every function that decides whom to trust.

The model-signing key (its ARN, and the SHA-256 of its public key, which the signer reads from KMS at deploy time)
and the names of mlvault's own serving alarms are written by the signer into `trust/anchors.json`
(mlvault.wiring.Bundle.ANCHORS) before it signs the zip, so code signing covers them: changing a function's
environment, or publishing a version with another one, cannot re-pin whom the function trusts. The document's
shape is mlvault.wiring.Anchor; the library reads it (mlvault.trust.anchors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_kms as kms

from mlvault.wiring import Anchor, Bundle


@dataclass(frozen=True)
class TrustAnchors:
    stage: str
    model_signing_key: kms.IKey  # pinned by ARN; the signer adds its public key's SHA-256
    rollback_alarms: tuple[str, ...]  # alarms whose ALARM rolls serving back
    canary_alarms: tuple[str, ...]  # alarms the deploy step checks between canary steps

    @property
    def document(self) -> dict[str, Any]:
        return {
            Anchor.STAGE: self.stage,
            Anchor.MODEL_SIGNING_KEY: {Anchor.KEY_ARN: self.model_signing_key.key_arn},
            Anchor.ALARMS: {
                Anchor.ROLLBACK_ALARMS: list(self.rollback_alarms),
                Anchor.CANARY_ALARMS: list(self.canary_alarms),
            },
        }

    @property
    def bundle(self) -> dict[str, dict[str, Any]]:
        """The signer's `Bundle` property: the files it writes into the zip."""
        return {Bundle.ANCHORS: self.document}

    @property
    def pin_keys(self) -> dict[str, str]:
        """The signer's `PinKeys` property: the document entries whose key's public key it pins."""
        return {Anchor.MODEL_SIGNING_KEY: self.model_signing_key.key_arn}

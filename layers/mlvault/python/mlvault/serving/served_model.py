"""The one model a serving function serves, bundled with its signed code (`trust/served-model.json`,
mlvault.wiring.Bundle.SERVED_MODEL, written by infra at deploy time; keys: mlvault.wiring.ServedModelFact):

    {"stage": "dev", "model": "credit", "dataset": "credit"}

Each model has its own serving function: a pin (set in a published version's environment) naming a model of
another name, or a signed descriptor describing another model or dataset, is refused (MODEL_NAME_MISMATCH), and the
function's metrics carry the dimension Model = this name (its alarms watch [Stage, Model]). `load_served_model`
fails closed like the trust anchors (AnchorReason: ANCHORS_MISSING, ANCHORS_MALFORMED naming the field,
ANCHORS_WRONG_STAGE). Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlvault.errors import AnchorReason, TrustAnchorError
from mlvault.trust.bundled_json import BundledDocument
from mlvault.wiring import Bundle, ServedModelFact

DOCUMENT = BundledDocument(
    Bundle.SERVED_MODEL, AnchorReason.ANCHORS_MISSING, AnchorReason.ANCHORS_MALFORMED, max_bytes=16 * 1024
)
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_FIELDS = {ServedModelFact.STAGE, ServedModelFact.MODEL, ServedModelFact.DATASET}
_ANY = re.compile(r".+", re.DOTALL)


@dataclass(frozen=True)
class ServedModelFacts:
    stage: str
    model: str
    dataset: str


def load_served_model(path: Path, *, stage: str) -> ServedModelFacts:
    document = DOCUMENT.fields(DOCUMENT.read(path), _FIELDS, "")
    for name in sorted(_FIELDS):
        DOCUMENT.text(document[name], name, _ANY, "a non-empty string")
    DOCUMENT.text(document[ServedModelFact.MODEL], "model", _NAME, "a model name")
    if document[ServedModelFact.STAGE] != stage:
        raise TrustAnchorError(
            AnchorReason.ANCHORS_WRONG_STAGE,
            f"{Bundle.SERVED_MODEL} of stage {document[ServedModelFact.STAGE]!r}, the function's stage is {stage!r}",
        )
    return ServedModelFacts(
        stage=stage, model=document[ServedModelFact.MODEL], dataset=document[ServedModelFact.DATASET]
    )

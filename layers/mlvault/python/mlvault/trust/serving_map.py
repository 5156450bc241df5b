"""Where each model of the stage is served, bundled with the signed code of the functions that move serving
(deploy, rollback, revoke): `trust/serving.json` (mlvault.wiring.Bundle.SERVING, keys mlvault.wiring.ServingFact),
written into each bundle by the signer at deploy time (infra/constructs/model_facts.py), never configuration.

    {"stage": "dev",
     "models": {"<model>": {"function": "<its serving function's name>", "alias": "live",
                            "alarms": {"rollback": ["<alarm name>", ...], "canary": ["<alarm name>", ...]},
                            "lock": "<its deployment lock's name>"}}}

- a deployment moves the alias of the function serving the model its registry record names (never what the
  deployment's state says), judged by that model's `alarms.canary`, under that model's `lock`;
- the rollback function acts on an alarm of a model's `alarms.rollback` only, and then on that model's serving only;
- a revocation rolls back each model whose live model it revoked, each on its own function.

`load_serving` fails closed with a stable code (mlvault.errors.AnchorReason): the file missing (SERVING_MISSING),
not exactly the documented shape, a model name that is not a registry model name, an empty or repeated alarm, a
function or an alarm that two models share (SERVING_MALFORMED, the detail names the field), the document of
another stage than the function's (SERVING_WRONG_STAGE). Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlvault.errors import AnchorReason, TrustAnchorError
from mlvault.trust.bundled_json import BundledDocument
from mlvault.wiring import Bundle, ServingFact

DOCUMENT = BundledDocument(Bundle.SERVING, AnchorReason.SERVING_MISSING, AnchorReason.SERVING_MALFORMED)
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # the registry's model names (model_record.schema.json)
_FIELDS = {ServingFact.STAGE, ServingFact.MODELS}
_TARGET_FIELDS = {ServingFact.FUNCTION, ServingFact.ALIAS, ServingFact.ALARMS, ServingFact.LOCK}
_ALARM_FIELDS = {ServingFact.ROLLBACK_ALARMS, ServingFact.CANARY_ALARMS}


@dataclass(frozen=True)
class ServingTarget:
    """One model's serving: its function and alias, the alarms that roll it back and those that judge its canary,
    its deployment lock."""

    model: str
    function: str
    alias: str
    rollback_alarms: tuple[str, ...]
    canary_alarms: tuple[str, ...]
    lock: str

    @property
    def alarms(self) -> frozenset[str]:
        return frozenset(self.rollback_alarms + self.canary_alarms)


@dataclass(frozen=True)
class ServingMap:
    """Every served model of the stage, by name (sorted)."""

    stage: str
    targets: tuple[ServingTarget, ...]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(t.model for t in self.targets)

    def target(self, model: str) -> ServingTarget | None:
        """Where `model` is served; None for a model the stage does not serve."""
        return next((t for t in self.targets if t.model == model), None)

    def for_alarm(self, alarm_name: str) -> ServingTarget | None:
        """The model whose alarm (rollback or canary) this is; None for any other alarm."""
        return next((t for t in self.targets if alarm_name in t.alarms), None)


def load_serving(path: Path, *, stage: str) -> ServingMap:
    """The serving document bundled at `path`, for a function of `stage`; TrustAnchorError otherwise."""
    return _serving(DOCUMENT.read(path), stage=stage)


def parse_serving(data: bytes, *, stage: str) -> ServingMap:
    return _serving(DOCUMENT.parse(data), stage=stage)


def _serving(document: Any, *, stage: str) -> ServingMap:
    body = DOCUMENT.fields(document, _FIELDS, "")
    if not isinstance(body[ServingFact.STAGE], str) or not body[ServingFact.STAGE]:
        DOCUMENT.fail("stage", f"expected the stage's name, got {body[ServingFact.STAGE]!r}")
    if body[ServingFact.STAGE] != stage:
        raise TrustAnchorError(
            AnchorReason.SERVING_WRONG_STAGE,
            f"the bundled serving document is of stage {body[ServingFact.STAGE]!r}, this function is of stage "
            f"{stage!r}",
        )
    models = body[ServingFact.MODELS]
    if not isinstance(models, dict) or not models:
        DOCUMENT.fail("models", f"expected an object of at least one model, got {models!r}")
    targets = [_target(name, models[name]) for name in sorted(models)]
    _each_once(targets, lambda t: [t.function], "function")
    _each_once(targets, lambda t: sorted(t.alarms), "alarm")
    return ServingMap(stage=stage, targets=tuple(targets))


def _target(name: Any, value: Any) -> ServingTarget:
    where = f"models.{name}"
    DOCUMENT.text(name, where, MODEL_NAME, "a model name")
    entry = DOCUMENT.fields(value, _TARGET_FIELDS, where)
    for field in (ServingFact.FUNCTION, ServingFact.ALIAS, ServingFact.LOCK):
        DOCUMENT.text(entry[field], f"{where}.{field}")
    alarms = DOCUMENT.fields(entry[ServingFact.ALARMS], _ALARM_FIELDS, f"{where}.alarms")
    return ServingTarget(
        model=name,
        function=entry[ServingFact.FUNCTION],
        alias=entry[ServingFact.ALIAS],
        rollback_alarms=DOCUMENT.names(alarms[ServingFact.ROLLBACK_ALARMS], f"{where}.alarms.rollback"),
        canary_alarms=DOCUMENT.names(alarms[ServingFact.CANARY_ALARMS], f"{where}.alarms.canary"),
        lock=entry[ServingFact.LOCK],
    )


def _each_once(targets: list[ServingTarget], names: Any, what: str) -> None:
    """A function, or an alarm, belongs to one model only: otherwise acting on one model would move another."""
    owner: dict[str, str] = {}
    for target in targets:
        for name in names(target):
            if name in owner:
                DOCUMENT.fail(
                    f"models.{target.model}",
                    f"the {what} {name!r} is named by models {owner[name]!r} and {target.model!r}: "
                    f"a {what} belongs to one model",
                )
            owner[name] = target.model

"""Automated rollback: a serving alarm (EventBridge "CloudWatch Alarm State Change" to ALARM) or a key
revocation takes serving back to the last known good model, without a human.

- The target is re-verified first (artifact, signature with the pinned key, registry record intact, status
  SUPERSEDED or DEPLOYED, and the serving version really pins it). With no verified target, serving is left
  as it is and the alert says so: nothing unverified is ever deployed.
- Exactly one rollback per alarm event (a conditional write keyed by alarm and state-change time) and at most
  one per cooldown for a flapping alarm. An alarm during a canary removes the canary's weight at once (the
  pipeline's own check then stops that deployment: its model is ROLLED_BACK and cannot be promoted).
- Revocation blast radius: every accepted dataset version signed by the key at or after the revocation's
  effective time is marked, every model trained on one of them is REVOKED, and a live one is rolled back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlvault.attestation.pinned import attest_registered
from mlvault.canonical import ObjectVersion
from mlvault.errors import RolloutReason, RolloutRefused
from mlvault.ledger import Ledger
from mlvault.registry.records import DEPLOYED, REGISTERED, REVOKED, ROLLED_BACK, SIGNED, SUPERSEDED, ModelRegistry
from mlvault.rollout.canary import model_of_version, serving_alias
from mlvault.wiring import DetailType, Source


@dataclass(frozen=True)
class RollbackConfig:
    function_name: str
    alias: str
    signing_key_arn: str
    registry_table: str
    ledger_table: str
    alert_topic_arn: str
    cooldown_seconds: int
    event_bus: str = "default"


@dataclass
class RollbackReport:
    status: str  # ROLLED_BACK | NO_VERIFIED_TARGET | DUPLICATE | COOLDOWN | NOTHING_LIVE | NOT_LIVE
    reason: str
    from_model: str | None = None
    from_version: str | None = None
    to_model: str | None = None
    to_version: str | None = None
    refused_targets: dict[str, str] = field(default_factory=dict)
    tainted_files: list[str] = field(default_factory=list)
    revoked_models: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


class Rollback:
    def __init__(
        self, *, s3: Any, kms: Any, lambda_client: Any, events: Any, sns: Any, dynamodb: Any, config: RollbackConfig
    ) -> None:
        self._s3 = s3
        self._kms = kms
        self._lambda = lambda_client
        self._events = events
        self._sns = sns
        self._c = config
        self.registry = ModelRegistry(dynamodb, config.registry_table)
        self._ledger = Ledger(dynamodb, config.ledger_table)

    # --- alarms -------------------------------------------------------------------------------------------

    def on_alarm(self, event: dict[str, Any], now: datetime | None = None) -> RollbackReport:
        detail = event["detail"]
        if detail["state"]["value"] != "ALARM":
            return RollbackReport("IGNORED", f"{detail['alarmName']} is {detail['state']['value']}")
        alarm = detail["alarmName"]
        reason = f"alarm {alarm}: {detail['state'].get('reason', '')}"[:500]
        once = f"{alarm}@{detail['state'].get('timestamp') or event.get('time')}"
        if not self.registry.claim_once(f"ALARM#{once}"):
            return RollbackReport("DUPLICATE", f"{once} was already handled")
        now = now or datetime.now(UTC)
        if not self.registry.cooldown(self._c.alias, now, self._c.cooldown_seconds):
            report = RollbackReport("COOLDOWN", f"{reason}; a rollback ran less than {self._c.cooldown_seconds}s ago")
            self._announce(report)
            return report
        return self._roll_back(reason)

    # --- revocation ---------------------------------------------------------------------------------------

    def on_revocation(self, key_id: str, effective_at: str) -> RollbackReport:
        tainted = self._taint_files(key_id, effective_at)
        versions = {v for f in tainted for v in f["versions"]}
        revoked = []
        live_model, _, _ = self._live()
        for model in self.registry.models():
            if model["status"] == REVOKED or not any(
                _lineage_versions(e) & versions for e in model["record"]["lineage"]
            ):
                continue
            revoked.append(model["model_id"])
            self.registry.set_status(
                model["model_id"],
                REVOKED,
                allowed_from=(REGISTERED, SIGNED, DEPLOYED, SUPERSEDED, ROLLED_BACK),
                note=f"trained on data signed by revoked key {key_id}",
                revoked_reason=f"key {key_id} revoked from {effective_at}",
            )
        reason = f"key {key_id} revoked from {effective_at}"
        if live_model in revoked:
            report = self._roll_back(reason, already_revoked=True)
        else:
            report = RollbackReport("NOT_LIVE", f"{reason}; no live model was trained on its data")
            self._announce(report)
        report.tainted_files = sorted(f["lake_uri"] for f in tainted)
        report.revoked_models = revoked
        return report

    def _taint_files(self, key_id: str, effective_at: str) -> list[dict[str, Any]]:
        """Mark the accepted dataset versions the key signed at or after the effective time."""
        cutoff = datetime.fromisoformat(effective_at.replace("Z", "+00:00"))
        tainted = []
        for record in list(self._ledger.accepted_signed_by(key_id)):
            a = record.attributes
            if datetime.fromisoformat(a["uploaded_at"]) < cutoff:
                continue
            lake = ObjectVersion(a["lake_bucket"], a["lake_key"], a["lake_version"])
            self._ledger.taint(record, by=f"{key_id} (revoked from {effective_at})")
            ingest = ObjectVersion(record.bucket, record.key, record.version_id)
            tainted.append({"lake_uri": lake.uri, "versions": {lake, ingest}})
        return tainted

    # --- the rollback itself ------------------------------------------------------------------------------

    def _roll_back(self, reason: str, *, already_revoked: bool = False) -> RollbackReport:
        live_model, live_version, canary_version = self._live()
        if live_model is None:
            report = RollbackReport("NOTHING_LIVE", f"{reason}; nothing is serving")
            self._announce(report)
            return report
        bad_version = canary_version or live_version
        bad_model = self._model_of(bad_version)
        refused: dict[str, str] = {}
        target = None
        if canary_version:  # an alarm during a canary: the stable version is the target, verified first
            target = self._verified(live_model, live_version, refused)
        else:
            for candidate in self._candidates(exclude=bad_model):
                target = self._verified(candidate["model_id"], candidate.get("serving_version"), refused)
                if target:
                    break
        if target is None:
            report = RollbackReport(
                "NO_VERIFIED_TARGET",
                f"{reason}; no verified good model to roll back to: serving left as is",
                from_model=bad_model,
                from_version=bad_version,
                refused_targets=refused,
            )
            self._announce(report)
            return report
        to_model, to_version = target
        self._lambda.update_alias(
            FunctionName=self._c.function_name,
            Name=self._c.alias,
            FunctionVersion=to_version,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        if bad_model and not already_revoked:
            self.registry.set_status(  # the canary's own rollback may have marked it first
                bad_model,
                ROLLED_BACK,
                allowed_from=(SIGNED, DEPLOYED),
                settled=(ROLLED_BACK, REVOKED),
                note=reason,
                rollback_reason=reason,
            )
        if to_model != live_model or canary_version is None:
            self.registry.set_status(
                to_model, DEPLOYED, allowed_from=(SUPERSEDED, DEPLOYED), note=f"rollback: {reason}"
            )
        report = RollbackReport("ROLLED_BACK", reason, bad_model, bad_version, to_model, to_version, refused)
        self._announce(report)
        return report

    def _live(self) -> tuple[str | None, str | None, str | None]:
        """(model id of the stable version, stable version, canary version or None)."""
        alias = serving_alias(self._lambda, self._c.function_name, self._c.alias)
        if alias is None:
            return None, None, None
        weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {}
        canary = next(iter(weights), None)
        return self._model_of(alias["FunctionVersion"]), alias["FunctionVersion"], canary

    def _model_of(self, version: str | None) -> str | None:
        return model_of_version(self._lambda, self._c.function_name, version)

    def _candidates(self, exclude: str | None) -> list[dict[str, Any]]:
        """Earlier good models, the most recently served first (by serving version): deployed once, not rolled
        back or revoked."""
        models = [
            m
            for m in self.registry.models()
            if m["model_id"] != exclude and m["status"] in (SUPERSEDED, DEPLOYED) and m.get("serving_version")
        ]
        return sorted(models, key=lambda m: int(m["serving_version"]), reverse=True)

    def _verified(self, model_id: str | None, version: str | None, refused: dict[str, str]) -> tuple[str, str] | None:
        if model_id is None or version is None:
            return None
        try:
            attest_registered(
                self._s3,
                self._kms,
                self.registry.model(model_id),
                self._c.signing_key_arn,
                statuses=(SUPERSEDED, DEPLOYED),
            )
        except RolloutRefused as err:
            refused[model_id] = err.reason
            return None
        if self._model_of(version) != model_id:
            refused[model_id] = RolloutReason.VERSION_PINS_ANOTHER_MODEL
            return None
        return model_id, version

    def _announce(self, report: RollbackReport) -> None:
        detail = report.to_json()
        rolled_back = report.status == "ROLLED_BACK"
        self._events.put_events(
            Entries=[
                {
                    "Source": Source.MODELS,
                    "DetailType": DetailType.MODEL_ROLLED_BACK if rolled_back else DetailType.ROLLBACK_NOT_DONE,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._c.event_bus,
                }
            ]
        )
        self._sns.publish(
            TopicArn=self._c.alert_topic_arn,
            Subject=f"mlvault: rollback {report.status}"[:100],
            Message=json.dumps(detail, indent=2),
        )


def _lineage_versions(entry: dict[str, Any]) -> set[ObjectVersion]:
    """The object versions a lineage entry names (its lake version and the ingest versions it was accepted from)."""
    return {ObjectVersion.parse(uri) for uri in [entry["lake_uri"], *entry["ingest"]]}

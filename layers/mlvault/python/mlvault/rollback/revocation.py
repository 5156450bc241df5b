"""A producer key's revocation and its blast radius: the revoke function's entry point (`mlvault producers revoke`),
separate from the alarm-driven rollback so that permission to revoke is not permission to roll back at will.

`Revocation.revoke(key_id, effective_at, reason, revoked_by)`:
0. refuses, before anything is recorded, tainted, revoked or announced (RevocationRefused, "REASON: detail" in one
   line): a key id in no producer entry of the stage's trust registry as bundled with the function's code
   (Bundle.TRUST_FILE, the reviewed file; never the event or the environment) UNKNOWN_KEY, an empty or
   whitespace-only reason NO_REASON, a revoked_by that is no IAM or STS principal ARN MALFORMED_REVOKER, an
   effective_at that is no ISO 8601 time with a time zone MALFORMED_EFFECTIVE_AT: a revocation stands for good;
1. records the revocation in the ledger (who: the caller's identity as the CLI proves it with
   sts:GetCallerIdentity; the first revocation of a key stands, a second one re-runs the blast radius with the
   first one's effective time and is reported `ALREADY_REVOKED`);
2. marks every accepted dataset version the key signed at or after the effective time (`tainted_by`: no later
   manifest takes it);
3. REVOKES every registered model trained on one of them (`revoked_by_key` names the key);
4. for every model the stage serves (the bundled serving document, mlvault.trust.serving_map), rolls its serving
   back only if its live model is one this revocation REVOKED (mlvault.rollback.responder's rollback, on that model's
   function: verified target of the same model, or serving left as is and said so) — a live model revoked for any
   other reason, or not revoked, is left to its own process, and so is every other model's serving;
5. announces the report (a `Key Revoked` event and an SNS alert, mlvault.outbox, once per key): `rollbacks` holds
   each rolled-back model's own report; `status` is ROLLED_BACK if any model was rolled back, NOT_LIVE if no live
   model was revoked, otherwise the first affected model's (e.g. NO_VERIFIED_TARGET), whose fields it carries.
Every step is idempotent: re-running after an interruption finishes what the first run did not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from mlvault.canonical import ObjectVersion
from mlvault.errors import RevocationReason, RevocationRefused
from mlvault.ledger import Ledger
from mlvault.registry.records import (
    DEPLOYED,
    REGISTERED,
    REVOKED,
    ROLLED_BACK,
    RUN_REVOKED,
    SIGNED,
    SUPERSEDED,
)
from mlvault.rollback.responder import Rollback, RollbackReport
from mlvault.trust.producers import ProducerRegistry
from mlvault.wiring import Bundle, DetailType

# Who revokes: the caller's identity as sts:GetCallerIdentity returns it (an IAM user or role, the account's root, an
# assumed role's or a federated user's session), in any partition. Nothing else is recorded as `revoked_by`.
PRINCIPAL_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:(iam|sts)::\d{12}:(root|(user|role|assumed-role|federated-user)/[\w+=,.@/-]{1,1024})",
    re.ASCII,
)
NOTHING = "nothing revoked"
_SHOWN = 80  # characters of a refused value the detail quotes


class Revocation:
    def __init__(self, *, rollback: Rollback, ledger: Ledger, producers: ProducerRegistry) -> None:
        """`producers`: the stage's trust registry bundled with the function's code: the only keys it may revoke."""
        self._rollback = rollback
        self.registry = rollback.registry
        self._ledger = ledger
        self._producers = producers

    def revoke(self, key_id: str, *, effective_at: str, reason: str, revoked_by: str) -> RollbackReport:
        effective = self._refuse_unless_sound(key_id, effective_at=effective_at, reason=reason, revoked_by=revoked_by)
        recorded = self._ledger.revoke(key_id, effective_at=effective, reason=reason, revoked_by=revoked_by)
        first = self._ledger.revocation(key_id) or {}
        effective_at = first.get("effective_at", effective.isoformat())
        tainted = self._taint_files(key_id, effective_at)
        versions = {v for f in tainted for v in f["versions"]}
        self._revoke_models(key_id, effective_at, versions)
        by_this = sorted(m["model_id"] for m in self.registry.models() if m.get("revoked_by_key") == key_id)
        why = f"key {key_id} revoked from {effective_at}"
        rollbacks: dict[str, RollbackReport] = {}
        for target in self._rollback.serving.targets:  # each model on its own function; the others untouched
            live_model, _, _ = self._rollback.live(target)
            if live_model in by_this:
                rollbacks[target.model] = self._rollback.roll_back(why, target, already_revoked=True)
        report = _summary(why, rollbacks)
        report.tainted_files = sorted(f["lake_uri"] for f in tainted)
        report.revoked_models = by_this
        report.revocation = {
            "key_id": key_id,
            "effective_at": effective_at,
            "reason": first.get("reason", reason),
            "revoked_by": first.get("revoked_by", revoked_by),
            "recorded": "RECORDED" if recorded else "ALREADY_REVOKED",
        }
        once = f"REVOKE#{key_id}"
        announcement = self._rollback.announcement(once, report, detail_type=DetailType.KEY_REVOKED)
        self.registry.report_once(once, report.to_json(), announcement, self._rollback.outbox)
        return report

    def _refuse_unless_sound(self, key_id: Any, *, effective_at: Any, reason: Any, revoked_by: Any) -> datetime:
        """The effective time of a revocation that may be recorded; RevocationRefused, before anything is read or
        written, for one that may not (the event comes from the caller: any field may be missing or of any type)."""
        if not isinstance(key_id, str) or self._producers.key(key_id) is None:
            raise RevocationRefused(
                RevocationReason.UNKNOWN_KEY,
                f"key {_shown(key_id)} is in no producer entry of the stage's trust registry ({Bundle.TRUST_FILE} in "
                f"the function's bundle): {NOTHING}",
            )
        if not isinstance(reason, str) or not reason.strip():
            raise RevocationRefused(
                RevocationReason.NO_REASON, f"a revocation needs a reason, got {_shown(reason)}: {NOTHING}"
            )
        if not isinstance(revoked_by, str) or not PRINCIPAL_ARN.fullmatch(revoked_by):
            raise RevocationRefused(
                RevocationReason.MALFORMED_REVOKER,
                "revoked_by must be the caller's IAM or STS principal ARN (as sts:GetCallerIdentity names it), got "
                f"{_shown(revoked_by)}: {NOTHING}",
            )
        if isinstance(effective_at, str):
            try:
                return _aware(effective_at)
            except ValueError:
                pass
        raise RevocationRefused(
            RevocationReason.MALFORMED_EFFECTIVE_AT,
            "effective_at must be an ISO 8601 time with a time zone (e.g. 2026-11-25T10:00:00Z), got "
            f"{_shown(effective_at)}: {NOTHING}",
        )

    def _taint_files(self, key_id: str, effective_at: str) -> list[dict[str, Any]]:
        """Mark the accepted dataset versions the key signed at or after the effective time."""
        cutoff = _aware(effective_at)
        tainted = []
        for record in list(self._ledger.accepted_signed_by(key_id)):
            a = record.attributes
            if _aware(a["uploaded_at"], assume_utc=True) < cutoff:
                continue
            lake = ObjectVersion(a["lake_bucket"], a["lake_key"], a["lake_version"])
            self._ledger.taint(record, by=f"{key_id} (revoked from {effective_at})")
            ingest = ObjectVersion(record.bucket, record.key, record.version_id)
            tainted.append({"lake_uri": lake.uri, "versions": {lake, ingest}})
        return tainted

    def _revoke_models(self, key_id: str, effective_at: str, versions: set[ObjectVersion]) -> None:
        for model in self.registry.models():
            if model["status"] == REVOKED or not any(
                _lineage_versions(e) & versions for e in model["record"]["lineage"]
            ):
                continue
            self.registry.set_status(
                model["model_id"],
                REVOKED,
                allowed_from=(REGISTERED, SIGNED, DEPLOYED, SUPERSEDED, ROLLED_BACK),
                settled=(REVOKED,),
                note=f"trained on data signed by revoked key {key_id}",
                revoked_reason=f"key {key_id} revoked from {effective_at}",
                revoked_by_key=key_id,
            )
            run = self.registry.run(model.get("run_id", "")) if model.get("run_id") else None
            if run is not None:
                outcome = {"step": "revocation", "reason": "KEY_REVOKED", "detail": f"key {key_id} from {effective_at}"}
                self.registry.update_run(run["run_id"], RUN_REVOKED, outcome=outcome)


def _summary(why: str, rollbacks: dict[str, RollbackReport]) -> RollbackReport:
    """The revocation's report: the first model rolled back's fields (or the first affected model's), with every
    affected model's own report in `rollbacks`."""
    if not rollbacks:
        return RollbackReport("NOT_LIVE", f"{why}; no live model was trained on its data")
    done = [r for r in rollbacks.values() if r.status == "ROLLED_BACK"]
    first = done[0] if done else next(iter(rollbacks.values()))
    report = RollbackReport.from_json(first.to_json())
    if len(rollbacks) > 1:  # the fields stay the first's (`model` says whose); the reason names every outcome
        report.reason = f"{why}; " + ", ".join(f"{model}: {r.status}" for model, r in rollbacks.items())
    report.rollbacks = {model: r.to_json() for model, r in rollbacks.items()}
    return report


def _shown(value: Any) -> str:
    """A refused value as the one-line detail quotes it: its repr (control characters escaped), cut short."""
    shown = repr(value)
    return shown if len(shown) <= _SHOWN else f"{shown[: _SHOWN - 3]}..."


def _aware(value: str, *, assume_utc: bool = False) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        if assume_utc:
            return parsed.replace(tzinfo=UTC)
        raise ValueError(f"a revocation's effective time needs a time zone, got {value!r}")
    return parsed


def _lineage_versions(entry: dict[str, Any]) -> set[ObjectVersion]:
    """The object versions a lineage entry names (its lake version and the ingest versions it was accepted from)."""
    return {ObjectVersion.parse(uri) for uri in [entry["lake_uri"], *entry["ingest"]]}

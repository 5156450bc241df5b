"""Automated rollback: a serving alarm's change to ALARM takes that model's serving back to its last known good
model, without a human. The rollback function believes no event: an event only names an alarm to look at.

- Only the stage's own rolling-back alarms act (a model's `alarms.rollback` in the bundled serving document,
  mlvault.trust.serving_map): an event for any other alarm (another application's, a canary-only alarm, or a
  forged name) is IGNORED and nothing moves.
- The alarm's model is the only one acted on: its function and alias, rolled back to an earlier model of the same
  name (its registry record's `model`), under a cooldown of its own; every other model's serving is untouched.
- The alarm's real state and history are read from CloudWatch (mlvault.rollout.alarm_history): it acts when the
  alarm is in ALARM now, or went to ALARM within RECENT_ALARM_SECONDS (a brief alarm); otherwise the event is
  IGNORED, whatever it claims.
- Exactly one rollback per real change into ALARM: the once-guard is keyed on the alarm name and the timestamp of
  that change as CloudWatch reports it, never on the event's fields; and at most one per cooldown of the model for
  a flapping alarm, except during a canary: removing a canary's weight is never held back by the cooldown.
- The target is re-verified first (artifact, signature with the anchored key, registry record intact, status
  SUPERSEDED or DEPLOYED, and the serving version really pins it). With no verified target, serving is left as it
  is and the alert says so: nothing unverified is ever deployed. An alarm during a canary removes the canary's
  weight at once (the pipeline's own judgement then stops that deployment).
- Every outcome is a report stored with its announcement (a `Model Rolled Back` / `Rollback Not Done` event and
  an SNS alert, mlvault.outbox) on the alarm's once-item of the registry: a failed publish is retried (the
  function's retry delivers what is pending) or swept (`sweep`, on the function's schedule); never lost.

Key revocations (mlvault.rollback.revocation) use the same rollback, from their own entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlvault.attestation.pinned import attest_registered
from mlvault.errors import RolloutReason, RolloutRefused
from mlvault.outbox import Alert, Announcement, Event
from mlvault.registry.records import (
    DEPLOYED,
    REVOKED,
    ROLLED_BACK,
    RUN_ROLLED_BACK,
    SIGNED,
    SUPERSEDED,
    ModelRegistry,
    once_key,
)
from mlvault.rollout.alarm_history import ALARM, AlarmHistory
from mlvault.rollout.canary import model_name, model_of_version, serving_alias
from mlvault.trust.anchors import SigningKey
from mlvault.trust.serving_map import ServingMap, ServingTarget
from mlvault.wiring import DetailType, Source

RECENT_ALARM_SECONDS = 900  # an alarm back to OK acts if it went to ALARM this recently (CloudWatch's history)
IN_PROGRESS_SECONDS = 330  # a claim younger than the function's timeout (5 min) may still be running
SWEEP_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class RollbackConfig:
    serving: ServingMap  # the bundled serving document: each model's function, alias and rolling-back alarms
    signing_key: SigningKey  # the bundled anchor
    registry_table: str
    alert_topic_arn: str
    cooldown_seconds: int
    stage: str = ""
    event_bus: str = "default"


@dataclass
class RollbackReport:
    # ROLLED_BACK | NO_VERIFIED_TARGET | DUPLICATE | COOLDOWN | NOTHING_LIVE | NOT_LIVE | IGNORED | INTERRUPTED
    status: str
    reason: str
    from_model: str | None = None
    from_version: str | None = None
    to_model: str | None = None
    to_version: str | None = None
    refused_targets: dict[str, str] = field(default_factory=dict)
    tainted_files: list[str] = field(default_factory=list)
    revoked_models: list[str] = field(default_factory=list)
    alarm: str | None = None
    alarm_at: str | None = None  # the change into ALARM acted on, as CloudWatch reports it
    revocation: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # the model whose serving this is about
    rollbacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # a revocation's: each model's own report

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RollbackReport:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Rollback:
    def __init__(
        self,
        *,
        s3: Any,
        kms: Any,
        lambda_client: Any,
        events: Any,
        sns: Any,
        dynamodb: Any,
        config: RollbackConfig,
        cloudwatch: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._s3 = s3
        self._kms = kms
        self._lambda = lambda_client
        self._c = config
        self.serving = config.serving
        self._clock = clock or (lambda: datetime.now(UTC))
        self.registry = ModelRegistry(dynamodb, config.registry_table)
        self.outbox = self.registry.outbox(events=events, sns=sns)
        self._alarms = AlarmHistory(cloudwatch) if cloudwatch is not None else None

    # --- alarms -------------------------------------------------------------------------------------------

    def on_alarm(self, event: Any) -> RollbackReport:
        """Act on an alarm event, judged by CloudWatch's own account of the alarm (the event only names it)."""
        detail = event.get("detail") if isinstance(event, dict) else None
        name = detail.get("alarmName") if isinstance(detail, dict) else None
        target = self.serving.for_alarm(name) if isinstance(name, str) else None
        if target is None or name not in target.rollback_alarms:
            return RollbackReport("IGNORED", f"{name!r} is not one of this stage's rolling-back alarms", alarm=name)
        if self._alarms is None:
            raise ValueError("judging an alarm needs a CloudWatch client")
        real = self._alarms.latest_alarm(name)
        if real is None:
            return RollbackReport("IGNORED", f"CloudWatch has no alarm {name!r}", alarm=name)
        now = self._clock()
        last = real.last_alarm
        if real.state == ALARM:
            at = last.at if last is not None else real.updated_at
        elif last is not None and now - last.at <= timedelta(seconds=RECENT_ALARM_SECONDS):
            at = last.at  # a brief alarm, over by now: still acted on
        else:
            when = f"last at {last.at.isoformat()}" if last else "never"
            return RollbackReport(
                "IGNORED", f"CloudWatch has {name} in {real.state}, in ALARM {when}: nothing to act on", alarm=name
            )
        once = f"ALARM#{name}@{at.isoformat()}"
        context = {"alarm": name, "alarm_at": at.isoformat(), "model": target.model}
        if not self.registry.claim_once(once):
            return self._again(once, now, target, **context)
        reason = f"alarm {name} (in ALARM at {at.isoformat()}, per CloudWatch)"
        _, _, canary = self._live(target)
        if canary is None and not self.registry.cooldown(target.model, now, self._c.cooldown_seconds):
            report = RollbackReport(
                "COOLDOWN",
                f"{reason}; a rollback of {target.model} ran less than {self._c.cooldown_seconds}s ago",
                **context,
            )
        else:
            report = self.roll_back(reason, target)
            report.alarm, report.alarm_at = name, at.isoformat()
        self._settle(once, report)
        return report

    def _again(self, once: str, now: datetime, target: ServingTarget, **context: Any) -> RollbackReport:
        """The alarm's change was claimed before: its report stands (what is pending of it is delivered now); a
        claim left without a report by an attempt that died is reported INTERRUPTED."""
        claim = self.registry.once(once) or {"at": "", "report": None}
        if claim["report"] is not None:
            self.outbox.deliver(once_key(once))
            return RollbackReport(
                "DUPLICATE", f"{once} was already handled: {claim['report'].get('status')}", **context
            )
        claimed = datetime.fromisoformat(claim["at"]) if claim["at"] else now
        if now - claimed < timedelta(seconds=IN_PROGRESS_SECONDS):
            return RollbackReport("DUPLICATE", f"{once} is being handled", **context)
        live_model, live_version, canary = self._live(target)
        report = RollbackReport(
            "INTERRUPTED",
            f"{once}: an earlier attempt claimed it and did not finish; {target.model} serves version {live_version} "
            f"({live_model}){', canary ' + canary if canary else ''}: check it",
            **context,
        )
        self._settle(once, report)
        return report

    def sweep(self) -> dict[str, list[str]]:
        """Deliver every announcement of the registry still pending after SWEEP_GRACE (its writer died)."""
        swept = self.outbox.sweep(grace=SWEEP_GRACE)
        return {"delivered": swept.delivered, "pending": swept.pending}

    # --- the rollback itself ------------------------------------------------------------------------------

    def roll_back(self, reason: str, serving: ServingTarget, *, already_revoked: bool = False) -> RollbackReport:
        """Move this model's serving back to its newest verified good model (during a canary: drop the canary's
        weight). Nothing of any other model moves."""
        live_model, live_version, canary_version = self._live(serving)
        if live_model is None:
            return RollbackReport("NOTHING_LIVE", f"{reason}; {serving.model}: nothing is serving", model=serving.model)
        bad_version = canary_version or live_version
        bad_model = self._model_of(serving, bad_version)
        refused: dict[str, str] = {}
        target = None
        if canary_version:  # an alarm during a canary: the stable version is the target, verified first
            target = self._verified(serving, live_model, live_version, refused)
        else:
            for candidate in self._candidates(serving, exclude=bad_model):
                target = self._verified(serving, candidate["model_id"], candidate.get("serving_version"), refused)
                if target:
                    break
        if target is None:
            return RollbackReport(
                "NO_VERIFIED_TARGET",
                f"{reason}; no verified good model of {serving.model} to roll back to: serving left as is",
                from_model=bad_model,
                from_version=bad_version,
                refused_targets=refused,
                model=serving.model,
            )
        to_model, to_version = target
        self._lambda.update_alias(
            FunctionName=serving.function,
            Name=serving.alias,
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
            self._run_of(bad_model, reason)
        if to_model != live_model or canary_version is None:
            self.registry.set_status(
                to_model, DEPLOYED, allowed_from=(SUPERSEDED, DEPLOYED), note=f"rollback: {reason}"
            )
        return RollbackReport(
            "ROLLED_BACK", reason, bad_model, bad_version, to_model, to_version, refused, model=serving.model
        )

    def live(self, serving: ServingTarget) -> tuple[str | None, str | None, str | None]:
        return self._live(serving)

    def _live(self, serving: ServingTarget) -> tuple[str | None, str | None, str | None]:
        """(model id of the stable version, stable version, canary version or None) of this model's alias."""
        alias = serving_alias(self._lambda, serving.function, serving.alias)
        if alias is None:
            return None, None, None
        weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {}
        canary = next(iter(weights), None)
        return self._model_of(serving, alias["FunctionVersion"]), alias["FunctionVersion"], canary

    def _model_of(self, serving: ServingTarget, version: str | None) -> str | None:
        return model_of_version(self._lambda, serving.function, version)

    def _run_of(self, model_id: str, reason: str) -> None:
        """The run that produced a model rolled back after it deployed ends ROLLED_BACK (once it was DEPLOYED)."""
        model = self.registry.model(model_id) or {}
        run = self.registry.run(model.get("run_id", "")) if model.get("run_id") else None
        if run is not None and run["status"] in ("DEPLOYED", "DEPLOYING"):
            outcome = {
                "step": "serving" if run["status"] == "DEPLOYED" else "canary",
                "reason": "ALARM",
                "detail": reason,
            }
            self.registry.update_run(run["run_id"], RUN_ROLLED_BACK, outcome=outcome)

    def _candidates(self, serving: ServingTarget, exclude: str | None) -> list[dict[str, Any]]:
        """Earlier good models of this name (their registry record's `model`), the most recently served first (by
        serving version): deployed once, not rolled back or revoked."""
        models = [
            m
            for m in self.registry.models()
            if m["model_id"] != exclude
            and model_name(m["record"]) == serving.model
            and m["status"] in (SUPERSEDED, DEPLOYED)
            and m.get("serving_version")
        ]
        return sorted(models, key=lambda m: int(m["serving_version"]), reverse=True)

    def _verified(
        self, serving: ServingTarget, model_id: str | None, version: str | None, refused: dict[str, str]
    ) -> tuple[str, str] | None:
        if model_id is None or version is None:
            return None
        model = self.registry.model(model_id)
        try:
            attest_registered(self._s3, self._kms, model, self._c.signing_key, statuses=(SUPERSEDED, DEPLOYED))
        except RolloutRefused as err:
            refused[model_id] = err.reason
            return None
        if model_name(model["record"]) != serving.model:  # signed and intact, but another model's
            refused[model_id] = RolloutReason.MODEL_NOT_SERVED
            return None
        if self._model_of(serving, version) != model_id:
            refused[model_id] = RolloutReason.VERSION_PINS_ANOTHER_MODEL
            return None
        return model_id, version

    # --- announcing ---------------------------------------------------------------------------------------

    def _settle(self, once: str, report: RollbackReport) -> None:
        """Store the report with its announcement, then deliver it (AnnouncementPending: retried, or swept)."""
        self.registry.settle_once(once, report.to_json(), self.announcement(once, report))
        self.outbox.deliver(once_key(once))

    def announcement(self, once: str, report: RollbackReport, detail_type: str | None = None) -> Announcement:
        detail = {"stage": self._c.stage, **report.to_json()}
        rolled_back = report.status == "ROLLED_BACK"
        about = f"{report.model} " if report.model else ""
        return Announcement.of(
            kind="rollback",
            subject=once,
            event=Event(
                source=Source.MODELS,
                detail_type=detail_type
                or (DetailType.MODEL_ROLLED_BACK if rolled_back else DetailType.ROLLBACK_NOT_DONE),
                detail=detail,
                bus=self._c.event_bus,
            ),
            alert=Alert(
                topic_arn=self._c.alert_topic_arn,
                subject=f"mlvault {self._c.stage}: {about}rollback {report.status}",
                message=detail,
                attributes={"stage": self._c.stage, "status": report.status, "model": report.model or ""},
            ),
        )

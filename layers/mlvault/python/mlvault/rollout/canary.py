"""Deploying a signed model to its serving function: verified again, pinned, then promoted through an alias in
canary steps; rolled back on any of its serving alarms. One deployment of a model at a time (its registry lock,
owned by the Step Functions execution, so a retried step is harmless); deployments of different models run side by
side.

Which function, alias, alarms and lock: those the bundled serving document (mlvault.trust.serving_map) gives the
model its registry record names (`model`), never anything the deployment's state says. A model the stage does not serve
is refused (MODEL_NOT_SERVED) before anything moves, and every step that moves an alias first checks that the
version it promotes pins the model being deployed (VERSION_PINS_ANOTHER_MODEL otherwise).

The serving function's *version* carries the pins (environment variables naming the artifact's version id and
digest and the signature object), and the serving function attests them itself before it serves
(mlvault.serving.loader), with the key of its own bundled anchors. Here, before anything is published, the
artifact and its signature are verified with the anchored key (mlvault.trust.anchors: whatever the environment
says), and the registry record must still hash to the digest the signature covers.

The canary's judgement: each step is judged by the history of the model's bundled canary alarms over the whole
canary, from the moment it first took traffic to the check (mlvault.rollout.alarm_history): an alarm that went to
ALARM and back to OK during a bake still rolls the candidate back, and so does a bundled alarm that does not exist.
Promotion judges once more, up to the moment it moves the alias. The run record follows (DEPLOYING, DEPLOYED,
ROLLED_BACK, REFUSED, each with its step and reason). A `live` alias on a version that pins no model (a serving
function's first, published with no model) is no previous version: the first model goes to 100% without a canary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlvault.attestation.key_alerts import blocked, is_key_refusal
from mlvault.attestation.pinned import attest_registered
from mlvault.errors import ModelRegistryError, RolloutReason, RolloutRefused
from mlvault.registry.records import (
    DEPLOYED,
    REVOKED,
    ROLLED_BACK,
    RUN_AWAITING_APPROVAL,
    RUN_DEPLOYED,
    RUN_DEPLOYING,
    RUN_REFUSED,
    RUN_REJECTED,
    RUN_ROLLED_BACK,
    SIGNED,
    SUPERSEDED,
    ModelRegistry,
)
from mlvault.rollout.alarm_history import AlarmHistory
from mlvault.trust.anchors import SigningKey
from mlvault.trust.serving_map import ServingMap, ServingTarget
from mlvault.wiring import Env


class DeploymentLocked(Exception):
    """Another deployment holds the lock (Step Functions retries on this name)."""


class CanaryAlarmed(Exception):
    """A canary alarm of the model was in ALARM during the canary, seen when promoting: the state machine rolls
    back."""


@dataclass(frozen=True)
class RolloutConfig:
    serving: ServingMap  # the bundled serving document: each model's function, alias, canary alarms and lock
    signing_key: SigningKey  # the bundled anchor (mlvault.trust.anchors)
    canary: tuple[tuple[int, int], ...]  # (percent, wait seconds) per step before 100%
    registry_table: str
    stage: str = ""
    alert_topic_arn: str = ""  # where a refused signing key is announced


class Rollout:
    def __init__(
        self,
        *,
        s3: Any,
        kms: Any,
        lambda_client: Any,
        cloudwatch: Any,
        dynamodb: Any,
        config: RolloutConfig,
        stepfunctions: Any = None,
        events: Any = None,
        sns: Any = None,
        clock: Any = None,
    ):
        self._s3 = s3
        self._kms = kms
        self._lambda = lambda_client
        self._cw = cloudwatch
        self._sfn = stepfunctions
        self._c = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self.registry = ModelRegistry(dynamodb, config.registry_table)
        self._outbox = self.registry.outbox(events=events, sns=sns)
        self._alarms = AlarmHistory(cloudwatch)

    def prepare(self, state: dict[str, Any], owner: str) -> dict[str, Any]:
        model = self.registry.model(state["model_id"])
        try:
            target = self._served(state["model_id"], model)
        except RolloutRefused as err:
            self._refused(state, model, err)
            raise
        holder = self.registry.acquire_lock(target.lock, owner, is_stale=self._ended)
        if holder != owner:
            raise DeploymentLocked(f"deployment {holder} of model {target.model} is in progress")
        try:
            self._attest(model)
        except RolloutRefused as err:
            self.registry.release_lock(target.lock, owner)
            self._refused(state, model, err)
            raise
        record = model["record"]
        pins = {
            Env.MODEL_ID: model["model_id"],
            Env.MODEL_BUCKET: record["artifact"]["bucket"],
            Env.MODEL_KEY: record["artifact"]["key"],
            Env.MODEL_VERSION: record["artifact"]["version_id"],
            Env.MODEL_DIGEST: record["artifact"]["sha256"],
            Env.SIGNATURE_KEY: model["signature_key"],
            Env.SIGNATURE_VERSION: model["signature_version"],
        }
        function = target.function
        current = self._lambda.get_function_configuration(FunctionName=function)
        env = {**current.get("Environment", {}).get("Variables", {}), **pins}
        env.pop(Env.SIGNING_KEY_ARN, None)  # serving trusts its bundled anchor; a key named here would mislead
        self._lambda.update_function_configuration(FunctionName=function, Environment={"Variables": env})
        self._lambda.get_waiter("function_updated_v2").wait(FunctionName=function)
        version = self._lambda.publish_version(FunctionName=function, Description=model["model_id"])["Version"]
        alias = serving_alias(self._lambda, function, target.alias)
        if alias is None:
            self._lambda.create_alias(FunctionName=function, Name=target.alias, FunctionVersion=version)
        previous = None if alias is None else alias["FunctionVersion"]
        if previous is not None and model_of_version(self._lambda, function, previous) is None:
            previous = None  # the function's first version pins no model: nothing to canary against
        self._run(model, RUN_DEPLOYING, model_id=model["model_id"], serving_version=version)
        return {**state, "rollout": {"version": version, "previous": previous, "step": 0, "done": False}}

    def request_approval(self, state: dict[str, Any], token: str) -> dict[str, Any]:
        """Park a signed model for a human (the execution waits on `token`); `mlvault models approve` resumes."""
        model = self.registry.model(state["model_id"])
        try:
            self._served(state["model_id"], model)  # no human is asked about a model the stage does not serve
            attest_registered(self._s3, self._kms, model, self._c.signing_key, statuses=(SIGNED,))
        except RolloutRefused as err:
            self._refused(state, model, err, step="approval")
            raise
        self._run(model, RUN_AWAITING_APPROVAL)
        self.registry.set_status(
            state["model_id"],
            SIGNED,
            allowed_from=(SIGNED,),
            note="approval requested",
            approval_token=token,
            approval_state=json.dumps(state, sort_keys=True),
        )
        return state

    def advance(self, state: dict[str, Any]) -> dict[str, Any]:
        r = dict(state["rollout"])
        if r["previous"] is None or r["previous"] == r["version"] or r["step"] >= len(self._c.canary):
            return {**state, "rollout": {**r, "done": True}}
        target = self._target(state["model_id"])
        percent, wait = self._c.canary[r["step"]]
        note = f"canary {percent}% on version {r['version']}"
        self._pinned(target, r["version"], state["model_id"])
        self._still_deployable(state["model_id"], SIGNED, allowed_from=(SIGNED,), note=note)
        since = r.get("since") or self._clock().isoformat()  # judged from before its first traffic
        self._lambda.update_alias(
            FunctionName=target.function,
            Name=target.alias,
            FunctionVersion=r["previous"],
            RoutingConfig={"AdditionalVersionWeights": {r["version"]: percent / 100}},
        )
        step = {"step": r["step"] + 1, "percent": percent, "wait_seconds": wait, "since": since}
        return {**state, "rollout": {**r, **step}}

    def check(self, state: dict[str, Any]) -> dict[str, Any]:
        """Judge the canary by its model's alarms' history since it first took traffic (not their state now)."""
        fired = self._fired(self._target(state["model_id"]), state["rollout"])
        alarm, detail = fired[0] if fired else (None, None)
        return {**state, "rollout": {**state["rollout"], "alarm": alarm, "alarm_detail": detail}}

    def promote(self, state: dict[str, Any], owner: str) -> dict[str, Any]:
        r = state["rollout"]
        target = self._target(state["model_id"])
        fired = self._fired(target, r)  # a last look, up to the moment the alias moves
        if fired:
            raise CanaryAlarmed("; ".join(f"{name}: {detail}" for name, detail in fired))
        self._pinned(target, r["version"], state["model_id"])
        previous = r["previous"] if r["previous"] not in (None, r["version"]) else None
        previous_model = model_of_version(self._lambda, target.function, previous)
        self._still_deployable(
            state["model_id"],
            DEPLOYED,
            allowed_from=(SIGNED, DEPLOYED),
            note=f"100% on version {r['version']}",
            serving_version=r["version"],
        )
        self._lambda.update_alias(
            FunctionName=target.function,
            Name=target.alias,
            FunctionVersion=r["version"],
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        if previous_model and previous_model != state["model_id"]:
            self.registry.set_status(  # a previous model revoked or rolled back meanwhile stays so
                previous_model,
                SUPERSEDED,
                allowed_from=(DEPLOYED,),
                settled=(SUPERSEDED, ROLLED_BACK, REVOKED),
                note=f"by {state['model_id']}",
            )
        self.registry.release_lock(target.lock, owner)
        model = self.registry.model(state["model_id"])
        self._run(model, RUN_DEPLOYED, outcome={"step": "promote", "reason": "", "detail": f"100% on {r['version']}"})
        return {**state, "rollout": {**r, "done": True, "percent": 100}}

    def rollback(self, state: dict[str, Any], owner: str) -> dict[str, Any]:
        r = state.get("rollout") or {"version": None, "previous": None}
        error = state.get("error") or {}
        reason = r.get("alarm") or _error_name(error) or "deployment failed"
        detail = r.get("alarm_detail") or _cause(error)
        target = self._target(state["model_id"])
        if r["previous"] not in (None, r["version"]):
            self._pinned(target, r["version"], state["model_id"])  # the alias moved off this model's version only
            self._lambda.update_alias(
                FunctionName=target.function,
                Name=target.alias,
                FunctionVersion=r["previous"],
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
        self.registry.set_status(  # the rollback function may have rolled it back (or it was revoked) first
            state["model_id"],
            ROLLED_BACK,
            allowed_from=(SIGNED, DEPLOYED),
            settled=(ROLLED_BACK, REVOKED),
            note=f"alarm {reason}" if r.get("alarm") else f"deployment failed: {reason}",
            rollback_reason=reason,
        )
        self.registry.release_lock(target.lock, owner)
        outcome = {"step": "canary", "reason": "ALARM" if r.get("alarm") else reason, "detail": detail or reason}
        self._run(self.registry.model(state["model_id"]), RUN_ROLLED_BACK, outcome=outcome, alarm=r.get("alarm") or "")
        return {**state, "rollout": {**r, "rolled_back": True}}

    # --- helpers ------------------------------------------------------------------------------------------

    def _still_deployable(self, model_id: str, status: str, **change: Any) -> None:
        """A status change of the model being deployed; refused (MODEL_NOT_DEPLOYABLE) when it was rolled back or
        revoked meanwhile."""
        try:
            self.registry.set_status(model_id, status, **change)
        except ModelRegistryError as err:
            raise RolloutRefused(RolloutReason.MODEL_NOT_DEPLOYABLE, err.detail) from None

    def _attest(self, model: dict[str, Any] | None) -> None:
        attest_registered(self._s3, self._kms, model, self._c.signing_key, statuses=(SIGNED,))

    def _served(self, model_id: str, model: dict[str, Any] | None) -> ServingTarget:
        """Where the model is served: the bundled serving document's entry for the model its (intact) registry
        record names. RolloutRefused for a model not registered, a record changed since it was written, or a model
        the stage does not serve (MODEL_NOT_SERVED)."""
        if model is None:
            raise RolloutRefused(RolloutReason.MODEL_NOT_REGISTERED, f"no model {model_id}")
        if not model["record_intact"]:
            raise RolloutRefused(
                RolloutReason.RECORD_TAMPERED, f"{model_id}'s registry record changed after it was written"
            )
        name = model_name(model["record"])
        target = self._c.serving.target(name) if isinstance(name, str) else None
        if target is None:
            raise RolloutRefused(
                RolloutReason.MODEL_NOT_SERVED,
                f"{model_id} is a model {name!r}; the stage's serving document serves "
                f"{', '.join(self._c.serving.models)} only",
            )
        return target

    def _target(self, model_id: str) -> ServingTarget:
        return self._served(model_id, self.registry.model(model_id))

    def _pinned(self, target: ServingTarget, version: str | None, model_id: str) -> None:
        """The version an alias is about to move to (or off) must pin the model being deployed, on its function."""
        pinned = model_of_version(self._lambda, target.function, version)
        if pinned != model_id:
            raise RolloutRefused(
                RolloutReason.VERSION_PINS_ANOTHER_MODEL,
                f"version {version} of {target.function} pins {pinned!r}, not the deployed {model_id}",
            )

    def _fired(self, target: ServingTarget, rollout: dict[str, Any]) -> list[tuple[str, str]]:
        """The model's canary alarms that were in ALARM since the canary first took traffic (none before it did)."""
        if not rollout.get("since"):
            return []
        since = datetime.fromisoformat(rollout["since"])
        return self._alarms.fired_since(target.canary_alarms, since, self._clock())

    def _run(self, model: dict[str, Any] | None, status: str, **fields: Any) -> None:
        """Record where the run of this model is (the registry's run record; nothing for a model of no run)."""
        run_id = (model or {}).get("run_id")
        if run_id and self.registry.run(run_id) is not None:
            self.registry.update_run(run_id, status, **fields)

    def _refused(self, state: dict[str, Any], model: dict[str, Any] | None, err: RolloutRefused, step: str = "deploy"):
        """A refused deployment ends its run REFUSED (step and reason); a refused signing key is announced."""
        self._run(model, RUN_REFUSED, outcome={"step": step, "reason": str(err.reason), "detail": err.detail})
        if is_key_refusal(err) and self._c.alert_topic_arn:
            run_id = (model or {}).get("run_id") or state["model_id"]
            announcement = blocked(
                stage=self._c.stage,
                step=step,
                run_id=run_id,
                model_id=state["model_id"],
                err=err,
                topic_arn=self._c.alert_topic_arn,
            )
            self.registry.report_once(
                f"BLOCKED#{run_id}#{step}", {"reason": str(err.reason)}, announcement, self._outbox
            )

    def _ended(self, execution_arn: str) -> bool:
        """A lock holder (an execution ARN) that is no longer running: stopped, failed or timed out before it
        released the lock. Owners that are not executions (tests, humans) never go stale here."""
        if self._sfn is None or ":execution:" not in execution_arn:
            return False
        try:
            status = self._sfn.describe_execution(executionArn=execution_arn)["status"]
        except self._sfn.exceptions.ExecutionDoesNotExist:
            return True
        return status != "RUNNING"


def model_name(record: dict[str, Any]) -> Any:
    """The model a registry record is of: its `model`; a record of the format before models had names has none, and
    its model was named like its dataset."""
    return record.get("model", record.get("dataset"))


def serving_alias(lambda_client: Any, function_name: str, alias: str) -> dict[str, Any] | None:
    """The serving alias (FunctionVersion, RoutingConfig), or None before the first deployment."""
    try:
        return lambda_client.get_alias(FunctionName=function_name, Name=alias)
    except lambda_client.exceptions.ResourceNotFoundException:
        return None


def model_of_version(lambda_client: Any, function_name: str, version: str | None) -> str | None:
    """The model a published serving version pins (its MLVAULT_MODEL_ID)."""
    if version is None:
        return None
    config = lambda_client.get_function_configuration(FunctionName=function_name, Qualifier=version)
    return config.get("Environment", {}).get("Variables", {}).get(Env.MODEL_ID)


def canary_from_json(raw: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(s["percent"]), int(s["waitSeconds"])) for s in json.loads(raw))


def decide_approval(sfn: Any, registry: ModelRegistry, model_id: str, *, approve: bool, by: str, reason: str) -> str:
    """A human's decision on a model waiting for approval: resumes the execution (deploys) or fails it."""
    model = registry.model(model_id)
    token = (model or {}).get("approval_token", "")
    if not token:
        raise RolloutRefused(RolloutReason.NO_PENDING_APPROVAL, f"{model_id} is not waiting for an approval")
    if not reason.strip():
        raise RolloutRefused(RolloutReason.NO_REASON, "an approval decision needs a reason")
    verdict = "approved" if approve else "rejected"
    try:
        registry.set_status(
            model_id, SIGNED, allowed_from=(SIGNED,), note=f"{verdict} by {by}: {reason}", approval_token=""
        )
    except ModelRegistryError as err:
        raise RolloutRefused(RolloutReason.MODEL_NOT_DEPLOYABLE, err.detail) from None
    if approve:
        sfn.send_task_success(taskToken=token, output=model["approval_state"])
    else:
        sfn.send_task_failure(taskToken=token, error="NotApproved", cause=f"{by}: {reason}"[:256])
        run_id = model.get("run_id")
        if run_id and registry.run(run_id) is not None:
            outcome = {"step": "approval", "reason": "NotApproved", "detail": f"rejected by {by}: {reason}"}
            registry.update_run(run_id, RUN_REJECTED, outcome=outcome)
    return verdict


def _error_name(error: dict[str, Any]) -> str:
    """The error a failed step raised (a Step Functions Catch's Error), with its reason code when it has one."""
    name = str(error.get("Error", ""))
    code = _cause(error).partition(": ")[0]
    return f"{name} {code}".strip() if code.isupper() and "_" in code else name


def _cause(error: dict[str, Any]) -> str:
    """The message of a failed step's error (a Lambda error's errorMessage inside the Catch's Cause)."""
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return str(cause)[:1000]
    return str(parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause)[:1000]

"""Deploying a signed model to the serving function: verified again, pinned, then promoted through an alias
in canary steps; rolled back on any serving alarm. One deployment at a time (a registry lock owned by the
Step Functions execution, so a retried step is harmless).

The serving function's *version* carries the pins (environment variables naming the artifact's version id and
digest, the signature object and the pinned KMS key ARN), and the serving function attests them itself before
it serves (mlvault.serving.loader). Here, before anything is published, the artifact and its signature are
verified with the pinned key, and the registry record must still hash to the digest the signature covers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlvault.attestation.pinned import attest_registered
from mlvault.errors import ModelRegistryError, RolloutReason, RolloutRefused
from mlvault.registry.records import DEPLOYED, REVOKED, ROLLED_BACK, SIGNED, SUPERSEDED, ModelRegistry
from mlvault.wiring import Env

LOCK = "serving"


class DeploymentLocked(Exception):
    """Another deployment holds the lock (Step Functions retries on this name)."""


@dataclass(frozen=True)
class RolloutConfig:
    function_name: str
    alias: str
    signing_key_arn: str
    canary: tuple[tuple[int, int], ...]  # (percent, wait seconds) per step before 100%
    alarms: tuple[str, ...]
    registry_table: str


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
    ):
        self._s3 = s3
        self._kms = kms
        self._lambda = lambda_client
        self._cw = cloudwatch
        self._sfn = stepfunctions
        self._c = config
        self.registry = ModelRegistry(dynamodb, config.registry_table)

    def prepare(self, state: dict[str, Any], owner: str) -> dict[str, Any]:
        holder = self.registry.acquire_lock(LOCK, owner, is_stale=self._ended)
        if holder != owner:
            raise DeploymentLocked(f"deployment {holder} is in progress")
        model = self.registry.model(state["model_id"])
        try:
            self._attest(model)
        except RolloutRefused:
            self.registry.release_lock(LOCK, owner)
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
            Env.SIGNING_KEY_ARN: self._c.signing_key_arn,
        }
        current = self._lambda.get_function_configuration(FunctionName=self._c.function_name)
        env = {**current.get("Environment", {}).get("Variables", {}), **pins}
        self._lambda.update_function_configuration(FunctionName=self._c.function_name, Environment={"Variables": env})
        self._lambda.get_waiter("function_updated_v2").wait(FunctionName=self._c.function_name)
        version = self._lambda.publish_version(FunctionName=self._c.function_name, Description=model["model_id"])[
            "Version"
        ]
        previous = self._live_version()
        if previous is None:
            self._lambda.create_alias(FunctionName=self._c.function_name, Name=self._c.alias, FunctionVersion=version)
        return {**state, "rollout": {"version": version, "previous": previous, "step": 0, "done": False}}

    def request_approval(self, state: dict[str, Any], token: str) -> dict[str, Any]:
        """Park a signed model for a human (the execution waits on `token`); `mlvault models approve` resumes."""
        model = self.registry.model(state["model_id"])
        attest_registered(self._s3, self._kms, model, self._c.signing_key_arn, statuses=(SIGNED,))
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
        percent, wait = self._c.canary[r["step"]]
        note = f"canary {percent}% on version {r['version']}"
        self._still_deployable(state["model_id"], SIGNED, allowed_from=(SIGNED,), note=note)
        self._lambda.update_alias(
            FunctionName=self._c.function_name,
            Name=self._c.alias,
            FunctionVersion=r["previous"],
            RoutingConfig={"AdditionalVersionWeights": {r["version"]: percent / 100}},
        )
        return {**state, "rollout": {**r, "step": r["step"] + 1, "percent": percent, "wait_seconds": wait}}

    def check(self, state: dict[str, Any]) -> dict[str, Any]:
        alarms = self._cw.describe_alarms(AlarmNames=list(self._c.alarms)).get("MetricAlarms", [])
        firing = sorted(a["AlarmName"] for a in alarms if a["StateValue"] == "ALARM")
        return {**state, "rollout": {**state["rollout"], "alarm": firing[0] if firing else None}}

    def promote(self, state: dict[str, Any], owner: str) -> dict[str, Any]:
        r = state["rollout"]
        previous_model = self._model_of(r["previous"]) if r["previous"] not in (None, r["version"]) else None
        self._still_deployable(
            state["model_id"],
            DEPLOYED,
            allowed_from=(SIGNED, DEPLOYED),
            note=f"100% on version {r['version']}",
            serving_version=r["version"],
        )
        self._lambda.update_alias(
            FunctionName=self._c.function_name,
            Name=self._c.alias,
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
        self.registry.release_lock(LOCK, owner)
        return {**state, "rollout": {**r, "done": True, "percent": 100}}

    def rollback(self, state: dict[str, Any], owner: str) -> dict[str, Any]:
        r = state["rollout"]
        reason = r.get("alarm") or "deployment failed"
        if r["previous"] not in (None, r["version"]):
            self._lambda.update_alias(
                FunctionName=self._c.function_name,
                Name=self._c.alias,
                FunctionVersion=r["previous"],
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
        self.registry.set_status(  # the rollback function may have rolled it back (or it was revoked) first
            state["model_id"],
            ROLLED_BACK,
            allowed_from=(SIGNED, DEPLOYED),
            settled=(ROLLED_BACK, REVOKED),
            note=f"alarm {reason}",
            rollback_reason=reason,
        )
        self.registry.release_lock(LOCK, owner)
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
        attest_registered(self._s3, self._kms, model, self._c.signing_key_arn, statuses=(SIGNED,))

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

    def _live_version(self) -> str | None:
        alias = serving_alias(self._lambda, self._c.function_name, self._c.alias)
        return None if alias is None else alias["FunctionVersion"]

    def _model_of(self, version: str) -> str | None:
        return model_of_version(self._lambda, self._c.function_name, version)


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
    return verdict

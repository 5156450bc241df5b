"""Frozen runtime settings of a Lambda function, read once from its environment (set by infra/ from cdk.json).

The last step of the one settings path: cdk.json -> typed settings -> construct props -> env vars -> here.
Settings name resources and tune behaviour; they never decide whom to trust: the model-signing key and mlvault's
own alarms come from the trust anchors bundled with the code (mlvault.trust.anchors), and where each model is
served, with its alarms and lock, from the bundled serving document (mlvault.trust.serving_map).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from functools import cache
from pathlib import Path
from typing import ClassVar

from mlvault.wiring import Env


class SettingsError(RuntimeError):
    """The function's environment lacks a setting or holds a bad value (a deployment bug, not bad input)."""


class _FromEnv:
    """Settings read from the function's environment: each field from the variable its class's ENV names."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None):
        return _from_env(cls, os.environ if env is None else env)


@dataclass(frozen=True)
class IngestSettings(_FromEnv):
    stage: str
    ingest_bucket: str
    lake_bucket: str
    quarantine_bucket: str
    ledger_table: str
    max_upload_bytes: int
    alert_topic_arn: str
    trust_file: str
    contracts_dir: str
    ingest_queue_url: str

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "ingest_bucket": Env.INGEST_BUCKET,
        "lake_bucket": Env.LAKE_BUCKET,
        "quarantine_bucket": Env.QUARANTINE_BUCKET,
        "ledger_table": Env.LEDGER_TABLE,
        "max_upload_bytes": Env.MAX_UPLOAD_BYTES,
        "alert_topic_arn": Env.ALERT_TOPIC_ARN,
        "trust_file": Env.TRUST_FILE,
        "contracts_dir": Env.CONTRACTS_DIR,
        "ingest_queue_url": Env.INGEST_QUEUE_URL,
    }


@dataclass(frozen=True)
class ReconcileSettings(_FromEnv):
    deadline_seconds: int
    max_redrives: int

    ENV: ClassVar[dict[str, str]] = {
        "deadline_seconds": Env.RECONCILE_DEADLINE_SECONDS,
        "max_redrives": Env.RECONCILE_MAX_REDRIVES,
    }


@dataclass(frozen=True)
class FunctionSettings(_FromEnv):
    """What every mlvault function has: its stage (metric dimension, log field)."""

    stage: str

    ENV: ClassVar[dict[str, str]] = {"stage": Env.STAGE}


@cache
def function_settings() -> FunctionSettings:
    """The running function's own settings, read once."""
    return FunctionSettings.from_env()


def bundled(relative: str) -> Path:
    """A file bundled with the function's code: relative to its task root (Lambda's working directory)."""
    return Path(os.environ.get(Env.TASK_ROOT, ".")) / relative


def _from_env(cls, env: Mapping[str, str]):
    values = {}
    for field in fields(cls):
        name = cls.ENV[field.name]
        raw = env.get(name)
        if (raw is None or raw == "") and field.default is not MISSING:
            continue  # an optional setting: its default
        if raw is None or raw == "":
            raise SettingsError(f"environment variable {name} is not set")
        if field.type == "int":
            try:
                values[field.name] = int(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None
        else:
            values[field.name] = raw
    return cls(**values)


@dataclass(frozen=True)
class PipelineSettings(_FromEnv):
    """The pipeline and sign functions. The models they train, with their gates and training, are in the signed
    bundle only (mlvault.wiring.Bundle.MODELS, mlvault.training.specs.load_specs: without it the functions refuse,
    MODELS_MISSING), never here."""

    stage: str
    model_bucket: str
    ledger_table: str
    registry_table: str
    contracts_dir: str
    alert_topic_arn: str  # where a refused signing key is announced

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "model_bucket": Env.MODEL_BUCKET,
        "ledger_table": Env.LEDGER_TABLE,
        "registry_table": Env.REGISTRY_TABLE,
        "contracts_dir": Env.CONTRACTS_DIR,
        "alert_topic_arn": Env.ALERT_TOPIC_ARN,
    }


@dataclass(frozen=True)
class RolloutSettings(_FromEnv):
    """The deploy function. Which function serves a model, its alarms and its lock are in the signed bundle
    (mlvault.wiring.Bundle.SERVING, mlvault.trust.serving_map), never here."""

    stage: str
    canary_json: str
    registry_table: str
    alert_topic_arn: str  # where a refused signing key is announced

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "canary_json": Env.CANARY_STEPS,
        "registry_table": Env.REGISTRY_TABLE,
        "alert_topic_arn": Env.ALERT_TOPIC_ARN,
    }


@dataclass(frozen=True)
class TriggerSettings(_FromEnv):
    """`model_pipelines`: JSON {"<model>": {"dataset", "state_machine_arn"}}, the pipeline of each model (an accepted
    batch of a dataset starts every model trained on it). Without it, the one pipeline `state_machine_arn` trains
    the comma-separated `datasets` (before models had names)."""

    stage: str
    debounce_seconds: int
    model_pipelines: str = ""
    state_machine_arn: str = ""
    datasets: str = ""  # comma-separated datasets a new accepted batch or the schedule trains

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "debounce_seconds": Env.TRAIN_DEBOUNCE_SECONDS,
        "model_pipelines": Env.MODEL_PIPELINES,
        "state_machine_arn": Env.STATE_MACHINE_ARN,
        "datasets": Env.TRAIN_DATASETS,
    }

    def pipelines(self) -> dict[str, tuple[str, str]]:
        """model -> (dataset, state machine ARN)."""
        import json

        if self.model_pipelines:
            routes = json.loads(self.model_pipelines)
            return {m: (r["dataset"], r["state_machine_arn"]) for m, r in sorted(routes.items())}
        return {d: (d, self.state_machine_arn) for d in self.datasets.split(",") if d}


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ServeSettings(_FromEnv):
    """The serving function's published version, pinned to one model (set by the deploy step before it publishes
    the version): the model object's exact S3 version and SHA-256, its signature's exact version and its registry
    id (for the revocation check). The key that must have signed it is not a setting: it is the bundled anchor."""

    stage: str
    model_bucket: str
    model_key: str
    model_version: str
    model_digest: str
    signature_key: str
    signature_version: str
    registry_table: str
    model_id: str

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "model_bucket": Env.MODEL_BUCKET,
        "model_key": Env.MODEL_KEY,
        "model_version": Env.MODEL_VERSION,
        "model_digest": Env.MODEL_DIGEST,
        "signature_key": Env.SIGNATURE_KEY,
        "signature_version": Env.SIGNATURE_VERSION,
        "registry_table": Env.REGISTRY_TABLE,
        "model_id": Env.MODEL_ID,
    }

    def __post_init__(self) -> None:
        env = self.ENV
        if not _SHA256_HEX.fullmatch(self.model_digest):
            raise SettingsError(
                f"{env['model_digest']}: expected 64 lowercase hex digits (SHA-256), got {self.model_digest!r}"
            )
        for name in ("model_version", "signature_version"):
            if getattr(self, name) == "null":
                raise SettingsError(
                    f"{env[name]}: expected an S3 version id, got 'null' (an object written to an unversioned "
                    "bucket can be overwritten in place: it pins nothing)"
                )


@dataclass(frozen=True)
class RollbackSettings(_FromEnv):
    """The rollback function. The models it rolls back, where they are served and their alarms are in the signed
    bundle (mlvault.wiring.Bundle.SERVING)."""

    stage: str
    registry_table: str
    alert_topic_arn: str
    cooldown_seconds: int

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "registry_table": Env.REGISTRY_TABLE,
        "alert_topic_arn": Env.ALERT_TOPIC_ARN,
        "cooldown_seconds": Env.ROLLBACK_COOLDOWN_SECONDS,
    }


@dataclass(frozen=True)
class RevokeSettings(_FromEnv):
    """The revoke function: records a producer key's revocation and handles its blast radius (the ledger's
    accepted files, the registry's models, the serving alias of each model whose live model it revoked; where each
    model is served is in the signed bundle, mlvault.wiring.Bundle.SERVING)."""

    stage: str
    registry_table: str
    ledger_table: str
    alert_topic_arn: str

    ENV: ClassVar[dict[str, str]] = {
        "stage": Env.STAGE,
        "registry_table": Env.REGISTRY_TABLE,
        "ledger_table": Env.LEDGER_TABLE,
        "alert_topic_arn": Env.ALERT_TOPIC_ARN,
    }


@dataclass(frozen=True)
class DriftSettings:
    """The serving function's drift window (mlvault.drift): rows per snapshot. Optional: an unset or empty
    variable takes the default, so a function deployed without it still serves."""

    window_rows: int = 200

    ENV: ClassVar[dict[str, str]] = {"window_rows": Env.DRIFT_WINDOW_ROWS}
    MIN_WINDOW_ROWS: ClassVar[int] = 20  # fewer rows: the PSI of clean traffic alone nears the alarm threshold

    def __post_init__(self) -> None:
        if self.window_rows < self.MIN_WINDOW_ROWS:
            raise SettingsError(
                f"{self.ENV['window_rows']}: expected at least {self.MIN_WINDOW_ROWS} rows, got {self.window_rows}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftSettings:
        env = os.environ if env is None else env
        defaults = {cls.ENV[f.name]: str(f.default) for f in fields(cls)}
        given = {name: env[name] for name in cls.ENV.values() if env.get(name)}
        return _from_env(cls, {**defaults, **given})

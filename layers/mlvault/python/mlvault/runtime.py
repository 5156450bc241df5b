"""Frozen runtime settings of a Lambda function, read once from its environment (set by infra/ from cdk.json).

The last step of the one settings path: cdk.json -> typed settings -> construct props -> env vars -> here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar


class SettingsError(RuntimeError):
    """The function's environment lacks a setting or holds a bad value (a deployment bug, not bad input)."""


@dataclass(frozen=True)
class IngestSettings:
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
        "stage": "MLVAULT_STAGE",
        "ingest_bucket": "MLVAULT_INGEST_BUCKET",
        "lake_bucket": "MLVAULT_LAKE_BUCKET",
        "quarantine_bucket": "MLVAULT_QUARANTINE_BUCKET",
        "ledger_table": "MLVAULT_LEDGER_TABLE",
        "max_upload_bytes": "MLVAULT_MAX_UPLOAD_BYTES",
        "alert_topic_arn": "MLVAULT_ALERT_TOPIC_ARN",
        "trust_file": "MLVAULT_TRUST_FILE",
        "contracts_dir": "MLVAULT_CONTRACTS_DIR",
        "ingest_queue_url": "MLVAULT_INGEST_QUEUE_URL",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        return _from_env(cls, os.environ if env is None else env)


@dataclass(frozen=True)
class ReconcileSettings:
    deadline_seconds: int
    max_redrives: int

    ENV: ClassVar[dict[str, str]] = {
        "deadline_seconds": "MLVAULT_RECONCILE_DEADLINE_SECONDS",
        "max_redrives": "MLVAULT_RECONCILE_MAX_REDRIVES",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReconcileSettings:
        return _from_env(cls, os.environ if env is None else env)


def _from_env(cls, env: Mapping[str, str]):
    values = {}
    for field in fields(cls):
        name = cls.ENV[field.name]
        raw = env.get(name)
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

"""Default wiring of the ingest domain objects from the function's environment (built once per container)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import boto3

from mlvault.ingest.reconcile import Reconciler
from mlvault.ingest.review import Reviewer
from mlvault.ingest.verify import Destinations, Verifier
from mlvault.ledger import Ledger
from mlvault.runtime import IngestSettings, ReconcileSettings
from mlvault.trust import load_registry


def _bundled(relative: str) -> Path:
    # Bundled with the function's code: relative to the task root (Lambda's working directory).
    return Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / relative


@cache
def settings() -> IngestSettings:
    return IngestSettings.from_env()


def destinations(s: IngestSettings) -> Destinations:
    return Destinations(
        ingest_bucket=s.ingest_bucket,
        lake_bucket=s.lake_bucket,
        quarantine_bucket=s.quarantine_bucket,
        max_upload_bytes=s.max_upload_bytes,
        alert_topic_arn=s.alert_topic_arn,
    )


@cache
def default_verifier() -> Verifier:
    from mlvault.contracts.gate import ContentGate  # pyarrow, in the functions that verify only

    s = settings()
    ledger = Ledger(boto3.client("dynamodb"), s.ledger_table)
    return Verifier(
        s3=boto3.client("s3"),
        kms=boto3.client("kms"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        ledger=ledger,
        registry=load_registry(_bundled(s.trust_file)),
        destinations=destinations(s),
        gate=ContentGate(_bundled(s.contracts_dir), ledger),
    )


@cache
def default_reviewer() -> Reviewer:
    s = settings()
    return Reviewer(
        s3=boto3.client("s3"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        ledger=Ledger(boto3.client("dynamodb"), s.ledger_table),
        destinations=destinations(s),
    )


@cache
def default_reconciler() -> Reconciler:
    s = settings()
    return Reconciler(
        s3=boto3.client("s3"),
        sqs=boto3.client("sqs"),
        cloudwatch=boto3.client("cloudwatch"),
        ledger=Ledger(boto3.client("dynamodb"), s.ledger_table),
        verifier=default_verifier(),
        settings=s,
        reconcile=ReconcileSettings.from_env(),
    )

"""Default wiring of the ingest domain objects from the function's environment (built once per container)."""

from __future__ import annotations

from functools import cache

import boto3

from mlvault.ingest.receive import Receiver
from mlvault.ledger import Ledger
from mlvault.runtime import IngestSettings


@cache
def default_receiver() -> Receiver:
    settings = IngestSettings.from_env()
    return Receiver(
        s3=boto3.client("s3"),
        ledger=Ledger(boto3.client("dynamodb"), settings.ledger_table),
        settings=settings,
    )

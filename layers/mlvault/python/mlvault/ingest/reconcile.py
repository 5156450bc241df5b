"""The reconciler: every ingest version ends with exactly one terminal ledger record, or someone hears of it.

On a schedule it lists the ingest versions, and each one without a terminal record after the deadline is
re-driven (a fresh notification on the ingest queue) up to a limit, then quarantined as UNVERIFIED_TIMEOUT.
It publishes the `Unaccounted` metric: versions past the deadline without a verdict (0 when healthy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlvault.config import IngestSettings, ReconcileSettings
from mlvault.errors import IngestReason, VerificationError
from mlvault.ingest.events import ObjectVersionRef
from mlvault.ingest.verify import Verifier
from mlvault.ledger import Ledger, is_terminal
from mlvault.wiring import NAMESPACE, Dimension, Metric


@dataclass
class ReconcileReport:
    versions: int = 0
    pending: int = 0
    unaccounted: list[str] = field(default_factory=list)
    redriven: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        *,
        s3: Any,
        sqs: Any,
        cloudwatch: Any,
        ledger: Ledger,
        verifier: Verifier,
        settings: IngestSettings,
        reconcile: ReconcileSettings,
    ) -> None:
        self._s3 = s3
        self._sqs = sqs
        self._cloudwatch = cloudwatch
        self._ledger = ledger
        self._verifier = verifier
        self._settings = settings
        self._deadline = timedelta(seconds=reconcile.deadline_seconds)
        self._max_redrives = reconcile.max_redrives

    def run(self, now: datetime | None = None) -> ReconcileReport:
        now = now or datetime.now(UTC)
        report = ReconcileReport()
        bucket = self._settings.ingest_bucket
        for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="producers/"):
            for version in page.get("Versions", []):
                report.versions += 1
                key, version_id = version["Key"], version["VersionId"]
                record = self._ledger.get(bucket, key, version_id)
                if is_terminal(record):
                    continue
                if now - version["LastModified"] < self._deadline:
                    report.pending += 1
                    continue
                name = f"{key}#{version_id}"
                report.unaccounted.append(name)
                redrives = int(record.attributes.get("redrives", "0")) if record else 0
                last = record.attributes.get("redriven_at") if record else None
                if last and now - datetime.fromisoformat(last) < self._deadline:
                    continue  # re-driven recently: that delivery gets its deadline too (still unaccounted)
                ref = ObjectVersionRef(
                    bucket=bucket,
                    key=key,
                    version_id=version_id,
                    size=int(version["Size"]),
                    sequencer="",
                    event_time=version["LastModified"].isoformat(),
                    event_name="Reconciler:Redrive",
                )
                if redrives < self._max_redrives:
                    self._ledger.note_redrive(bucket=bucket, key=key, version_id=version_id, size=ref.size)
                    self._sqs.send_message(
                        QueueUrl=self._settings.ingest_queue_url,
                        MessageBody=json.dumps(
                            {
                                "Records": [
                                    {
                                        "eventName": ref.event_name,
                                        "eventTime": ref.event_time,
                                        "s3": {
                                            "bucket": {"name": bucket},
                                            "object": {"key": key, "versionId": version_id, "size": ref.size},
                                        },
                                    }
                                ]
                            }
                        ),
                    )
                    report.redriven.append(name)
                else:
                    self._verifier.reject(
                        ref,
                        ref.size,
                        VerificationError(IngestReason.UNVERIFIED_TIMEOUT, f"no verdict after {redrives} re-drives"),
                    )
                    report.quarantined.append(name)
        self._cloudwatch.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": Metric.UNACCOUNTED,
                    "Value": len(report.unaccounted),
                    "Unit": "Count",
                    "Dimensions": [{"Name": Dimension.STAGE, "Value": self._settings.stage}],
                }
            ],
        )
        return report

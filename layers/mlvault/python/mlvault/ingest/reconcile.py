"""The reconciler: every ingest version ends with exactly one terminal ledger record, or someone hears of it.

On a schedule it lists the ingest versions, and each one without a terminal record after the deadline is
re-driven (a fresh notification on the ingest queue) up to a limit, then quarantined as UNVERIFIED_TIMEOUT.
Then it sweeps the ledger's outbox (mlvault.outbox): every announcement pending for longer than the grace period
(the reconciler's deadline, at most a minute) is published, so that a verdict or a review decision whose writer
died or could not publish is announced even if nobody retries it.
It publishes the `Unaccounted` metric (versions past the deadline without a verdict) and the `Unannounced` metric
(announcements still pending after the sweep); both are 0 when healthy.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlvault.config import IngestSettings, ReconcileSettings
from mlvault.errors import AnnouncementPending, IngestReason, TransientError, VerificationError
from mlvault.ingest.events import ObjectVersionRef
from mlvault.ingest.transient import transient_errors
from mlvault.ingest.verify import Verifier
from mlvault.ledger import Ledger, is_terminal
from mlvault.wiring import NAMESPACE, Dimension, Metric

ANNOUNCE_GRACE = timedelta(minutes=1)  # an announcement pending this long has no live writer left to publish it


@dataclass
class ReconcileReport:
    versions: int = 0
    pending: int = 0
    unaccounted: list[str] = field(default_factory=list)
    redriven: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # versions a transient error left for the next run
    announced: list[str] = field(default_factory=list)  # announcement ids the sweep published
    unannounced: list[str] = field(default_factory=list)  # announcement ids still pending after the sweep
    swept: bool = False  # the sweep ran to its end
    sweep_error: str = ""  # why it did not


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
                ref = ObjectVersionRef(
                    bucket=bucket,
                    key=version["Key"],
                    version_id=version["VersionId"],
                    size=int(version["Size"]),
                    sequencer="",
                    event_time=version["LastModified"].isoformat(),
                    event_name="Reconciler:Redrive",
                )
                try:
                    with transient_errors(ref):
                        self._reconcile(ref, version["LastModified"], now, report)
                except TransientError:  # this version next time; the others now
                    report.failed.append(f"{ref.key}#{ref.version_id}")
        self._sweep(now, report)
        self._cloudwatch.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": name,
                    "Value": value,
                    "Unit": "Count",
                    "Dimensions": [{"Name": Dimension.STAGE, "Value": self._settings.stage}],
                }
                for name, value in [
                    (Metric.UNACCOUNTED, len(report.unaccounted)),
                    *([(Metric.UNANNOUNCED, len(report.unannounced))] if report.swept else []),
                ]
            ],
        )
        return report

    def _reconcile(self, ref: ObjectVersionRef, uploaded: datetime, now: datetime, report: ReconcileReport) -> None:
        record = self._ledger.get(ref.bucket, ref.key, ref.version_id)
        if is_terminal(record):
            return  # its announcement, if still pending, is the sweep's
        if now - uploaded < self._deadline:
            report.pending += 1
            return
        name = f"{ref.key}#{ref.version_id}"
        report.unaccounted.append(name)
        redrives = int(record.attributes.get("redrives", "0")) if record else 0
        last = record.attributes.get("redriven_at") if record else None
        if last and now - datetime.fromisoformat(last) < self._deadline:
            return  # re-driven recently: that delivery gets its deadline too (still unaccounted)
        if redrives < self._max_redrives:
            self._ledger.note_redrive(bucket=ref.bucket, key=ref.key, version_id=ref.version_id, size=ref.size)
            self._sqs.send_message(QueueUrl=self._settings.ingest_queue_url, MessageBody=json.dumps(_notification(ref)))
            report.redriven.append(name)
            return
        reason = VerificationError(IngestReason.UNVERIFIED_TIMEOUT, f"no verdict after {redrives} re-drives")
        with suppress(AnnouncementPending):  # recorded; the sweep publishes its announcement
            self._verifier.reject(ref, ref.size, reason)
        report.quarantined.append(name)

    def _sweep(self, now: datetime, report: ReconcileReport) -> None:
        """Publish the ledger's pending announcements. A failed Scan (throttled, or not permitted) leaves them to
        the next run and never stops this one: the re-drives and the Unaccounted metric matter as much (no
        Unannounced data point then: we do not know)."""
        try:
            swept = self._verifier.outbox.sweep(grace=min(self._deadline, ANNOUNCE_GRACE), now=now)
        except (ClientError, BotoCoreError) as err:
            report.sweep_error = str(err)
            return
        report.announced, report.unannounced, report.swept = swept.delivered, swept.pending, True


def _notification(ref: ObjectVersionRef) -> dict[str, Any]:
    """The S3 notification the verifier would have received for this version."""
    return {
        "Records": [
            {
                "eventName": ref.event_name,
                "eventTime": ref.event_time,
                "s3": {
                    "bucket": {"name": ref.bucket},
                    "object": {"key": ref.key, "versionId": ref.version_id, "size": ref.size},
                },
            }
        ]
    }

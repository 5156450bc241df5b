"""Reconcile function (scheduled): every ingest version gets a verdict, or is re-driven or quarantined; every
pending announcement is published."""

from dataclasses import asdict

from mlvault.composition import default_reconciler
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    report = default_reconciler().run()
    logger.info("reconciled", extra=asdict(report))
    if report.sweep_error:
        logger.warning("pending announcements not swept: the next run tries again", extra={"error": report.sweep_error})
    return {
        "unaccounted": len(report.unaccounted),
        "redriven": len(report.redriven),
        "quarantined": len(report.quarantined),
        "failed": len(report.failed),
        "announced": len(report.announced),
        "unannounced": len(report.unannounced),
        "swept": report.swept,
        "pending": report.pending,
        "versions": report.versions,
    }

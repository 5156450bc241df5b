"""Reconcile function (scheduled): every ingest version gets a verdict, or is re-driven or quarantined."""

from dataclasses import asdict

from mlvault.composition import default_reconciler
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    report = default_reconciler().run()
    logger.info("reconciled", extra=asdict(report))
    return {
        "unaccounted": len(report.unaccounted),
        "redriven": len(report.redriven),
        "quarantined": len(report.quarantined),
        "pending": report.pending,
        "versions": report.versions,
    }

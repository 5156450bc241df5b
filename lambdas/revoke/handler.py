"""Revoke function (invoked by `mlvault producers revoke`): records a producer key's revocation with who revoked it
(the caller's identity, as the CLI proves it) and handles the blast radius: tainted files, revoked models, and a
rollback of a live model only if this revocation revoked it (mlvault.rollback.revocation)."""

from mlvault.composition import default_revocation
from mlvault.observability import emit, logger
from mlvault.wiring import Metric


@logger.inject_lambda_context
def handler(event, context):
    report = default_revocation().revoke(
        event["key_id"],
        effective_at=event["effective_at"],
        reason=event["reason"],
        revoked_by=event["revoked_by"],
    )
    logger.info("revoked", extra=report.to_json())
    if report.status == "ROLLED_BACK":
        emit(Metric.ROLLBACKS, 1)
    return report.to_json()

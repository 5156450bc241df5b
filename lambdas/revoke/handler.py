"""Revoke function (invoked by `mlvault producers revoke`): records a producer key's revocation with who revoked it
(the caller's identity, as the CLI proves it) and handles the blast radius: tainted files, revoked models, and a
rollback of a live model only if this revocation revoked it (mlvault.rollback.revocation).

A revocation it must not record (a key id in no producer entry of the bundled trust registry, no reason, a
malformed revoked_by or effective_at) is refused before anything is written: RevocationRefused is let out, so the
caller gets a function error whose payload's errorType is "RevocationRefused" and errorMessage is one line,
"REASON: detail" (UNKNOWN_KEY, NO_REASON, MALFORMED_REVOKER or MALFORMED_EFFECTIVE_AT)."""

from mlvault.composition import default_revocation
from mlvault.errors import RevocationRefused
from mlvault.observability import emit, logger
from mlvault.wiring import Metric


@logger.inject_lambda_context
def handler(event, context):
    fields = event if isinstance(event, dict) else {}  # whatever the caller sent: each field is checked
    try:
        report = default_revocation().revoke(
            fields.get("key_id"),
            effective_at=fields.get("effective_at"),
            reason=fields.get("reason"),
            revoked_by=fields.get("revoked_by"),
        )
    except RevocationRefused as err:
        logger.warning("revocation refused", extra={"reason": str(err.reason), "detail": err.detail})
        raise
    logger.info("revoked", extra=report.to_json())
    if report.status == "ROLLED_BACK":
        emit(Metric.ROLLBACKS, 1)
    return report.to_json()

"""Rollback function: a serving alarm (EventBridge) or a key revocation (`mlvault producers revoke`) takes
serving back to the last verified good model."""

from mlvault.composition import default_rollback
from mlvault.observability import emit, logger
from mlvault.wiring import DetailType, Metric


@logger.inject_lambda_context
def handler(event, context):
    rollback = default_rollback()
    if event.get("detail-type") == DetailType.ALARM_STATE_CHANGE:
        report = rollback.on_alarm(event)
    elif event.get("action") == "revoke":
        report = rollback.on_revocation(event["key_id"], event["effective_at"])
    else:
        raise ValueError(f"not a rollback trigger: {event.get('detail-type') or event.get('action')!r}")
    logger.info("rollback", extra=report.to_json())
    if report.status == "ROLLED_BACK":
        emit(Metric.ROLLBACKS, 1)
    return report.to_json()

"""Rollback function: a serving alarm's change to ALARM (EventBridge) takes serving back to the last verified good
model, judged by what CloudWatch says of the alarm, never by the event (mlvault.rollback.responder). Its schedule
delivers announcements left pending. Key revocations have their own function (lambdas/revoke)."""

from mlvault.composition import default_rollback
from mlvault.observability import emit, logger
from mlvault.wiring import DetailType, Metric

SCHEDULED = "Scheduled Event"  # EventBridge's detail type of a schedule rule's events


@logger.inject_lambda_context
def handler(event, context):
    rollback = default_rollback()
    kind = event.get("detail-type") if isinstance(event, dict) else None
    if kind == SCHEDULED:
        swept = rollback.sweep()
        logger.info("swept", extra=swept)
        return swept
    if kind != DetailType.ALARM_STATE_CHANGE:
        raise ValueError(f"not a rollback trigger: {kind!r}")
    report = rollback.on_alarm(event)
    logger.info("rollback", extra=report.to_json())
    if report.status == "ROLLED_BACK":
        emit(Metric.ROLLBACKS, 1)
    return report.to_json()

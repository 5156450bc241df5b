"""Verify function: SQS batch of S3 upload notifications -> one verdict per announced object version.

Thin adapter (GUIDE.md section 2): Powertools decorators, the library decides, and each message that could
not reach a verdict (a transient error), or whose verdict could not be announced yet, is reported so that only
it is retried. A verdict is counted once: by the call that finished its announcement.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mlvault.composition import default_verifier, ingest_settings
from mlvault.errors import AnnouncementPending
from mlvault.ingest.events import MalformedEventError, parse_message_body
from mlvault.observability import emit, logger
from mlvault.wiring import Dimension, Metric

processor = BatchProcessor(event_type=EventType.SQS)


def _record(record: SQSRecord) -> None:
    try:
        _verify(record)
    except AnnouncementPending:
        logger.exception(
            "verdict recorded, announcement pending: the message will be retried",
            extra={"message_id": record.message_id},
        )
        raise
    except Exception:
        logger.exception("no verdict: the message will be retried", extra={"message_id": record.message_id})
        raise


def _verify(record: SQSRecord) -> None:
    for ref in parse_message_body(record.body):
        if ref.bucket != ingest_settings().ingest_bucket:
            raise MalformedEventError(f"event names bucket {ref.bucket!r}, not the ingest bucket")
        verdict = default_verifier().verify(ref)
        logger.info(
            "verdict",
            extra={
                "key": ref.key,
                "version_id": ref.version_id,
                "status": verdict.status,
                "reason": verdict.reason,
                "duplicate": verdict.duplicate,
                "announced": verdict.announced,
            },
        )
        if verdict.announced:
            reason = [{Dimension.REASON: verdict.reason}] if verdict.reason else []
            emit(Metric.VERDICTS, 1, {Dimension.STATUS: verdict.status}, *reason)


@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)

"""Verify function: SQS batch of S3 upload notifications -> one verification per announced version.

Thin adapter (GUIDE.md section 2): Powertools decorators, the library does the work, failures are reported
per message so only those are retried.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mlvault.ingest.service import default_receiver
from mlvault.observability import logger

processor = BatchProcessor(event_type=EventType.SQS)


def _record(record: SQSRecord) -> None:
    for receipt in default_receiver().handle_message(record.body):
        logger.info(
            "upload received",
            extra={"key": receipt.ref.key, "version_id": receipt.ref.version_id, "new": receipt.new},
        )


@logger.inject_lambda_context
def handler(event, context):
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)

"""Review function (invoked by `mlvault review`): a human's decision on a held upload, recorded with who and why.

The caller may only pass a decision: the function, not the reviewer, copies the exact held bytes into the lake.
"""

from mlvault.composition import default_reviewer
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    verdict = default_reviewer().decide(
        key=event["key"],
        version_id=event["version_id"],
        decision=event["decision"],
        reviewed_by=event["reviewed_by"],
        reason=event["reason"],
    )
    logger.info(
        "reviewed",
        extra={
            "key": verdict.ref.key,
            "status": verdict.status,
            "by": event["reviewed_by"],
            "announcement_pending": verdict.pending,
        },
    )
    return {
        **verdict.attributes,
        "key": verdict.ref.key,
        "version_id": verdict.ref.version_id,
        "status": verdict.status,
        "announcement_pending": verdict.pending,  # recorded; the reconciler publishes the event and alert later
    }

"""Sign function (Step Functions task): the only function that may use the model signing key."""

from mlvault.composition import default_pipeline
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    result = default_pipeline().sign(event["state"])
    logger.info("signed", extra={"model_id": result["model_id"], "signature": result["signature"]})
    return result

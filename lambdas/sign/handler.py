"""Sign function (Step Functions task): the only function that may use the model signing key, and only the key
of its bundled trust anchors (a refused key stops the run and is announced: mlvault.training.pipeline)."""

from mlvault.composition import default_sign_step
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    result = default_sign_step().sign(event["state"])
    logger.info("signed", extra={"model_id": result["model_id"], "signature": result["signature"]})
    return result

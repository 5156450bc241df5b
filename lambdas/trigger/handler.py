"""Trigger function: an accepted batch (EventBridge) or the schedule starts the model pipeline, debounced."""

from mlvault.models.service import trigger_settings
from mlvault.models.trigger import start_training
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    started = start_training(event, trigger_settings())
    logger.info("training", extra={"started": started})
    return {"started": started}

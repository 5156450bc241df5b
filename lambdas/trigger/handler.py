"""Trigger function: an accepted batch (EventBridge) or the schedule starts the model pipeline, debounced."""

from mlvault.composition import trigger_settings
from mlvault.observability import logger
from mlvault.training.trigger import start_training


@logger.inject_lambda_context
def handler(event, context):
    started = start_training(event, trigger_settings())
    logger.info("training", extra={"started": started})
    return {"started": started}

"""Pipeline function (Step Functions tasks): train, evaluate, register; and `fail`, the end of a run whose step
failed (the state machine's catch): its record ends in that step and reason. Each step records the run first."""

from mlvault.composition import default_pipeline
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    step, state = event["step"], event["state"]
    pipeline = default_pipeline()
    if step == "train":
        result = pipeline.train(state["run_id"], state["dataset"])
    elif step == "evaluate":
        result = pipeline.evaluate(state)
    elif step == "register":
        result = pipeline.register(state)
    elif step == "fail":
        result = pipeline.record_failure(state["run_id"], state["dataset"], event["failed_step"], event["error"])
    else:
        raise ValueError(f"unknown pipeline step {step!r}")
    logger.info(step, extra={"run_id": result["run_id"], "model_id": result.get("model_id")})
    return result

"""Pipeline function (Step Functions tasks): train (engine lambda), prepare and collect (engine sagemaker: before and
after the training job), evaluate, register; and `fail`, the end of a run whose step failed (the state machine's
catch, the training job's included): its record ends in that step and reason. Each step records the run first."""

from mlvault.composition import default_pipeline
from mlvault.observability import logger


@logger.inject_lambda_context
def handler(event, context):
    step, state = event["step"], event["state"]
    pipeline = default_pipeline()
    if step == "train":
        result = pipeline.train(state["run_id"], state["dataset"], state.get("model"))
    elif step == "prepare":
        result = pipeline.prepare(
            state["run_id"], state["dataset"], state.get("model"), code_sha256=state.get("code_sha256")
        )
    elif step == "collect":  # "job": the training task's result (DescribeTrainingJob), when the state machine passes it
        result = pipeline.collect(state, event.get("job"))
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

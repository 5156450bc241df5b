"""Deploy function (Step Functions tasks): prepare, advance, check, promote, rollback of a canary rollout.
The execution's name owns the deployment lock."""

from mlvault.composition import default_rollout
from mlvault.observability import emit, logger
from mlvault.wiring import Metric


@logger.inject_lambda_context
def handler(event, context):
    action, state, owner = event["action"], event["state"], event["execution"]
    rollout = default_rollout()
    if action == "request_approval":  # the execution waits for `mlvault models approve|reject`
        result = rollout.request_approval(state, event["token"])
    elif action == "prepare":
        result = rollout.prepare(state, owner)
    elif action == "advance":
        result = rollout.advance(state)
    elif action == "check":
        result = rollout.check(state)
    elif action == "promote":
        result = rollout.promote(state, owner)
    elif action == "rollback":
        result = rollout.rollback(state, owner)
    else:
        raise ValueError(f"unknown deploy action {action!r}")
    logger.info(action, extra={"model_id": state.get("model_id"), "rollout": result.get("rollout")})
    if action in ("advance", "promote") and "percent" in result.get("rollout", {}):
        emit(Metric.CANARY_WEIGHT, result["rollout"]["percent"], unit="Percent")
    return result

"""The operator's side of a review: `mlvault review` asks the stage's review function to decide a held upload."""

from __future__ import annotations

import json
from typing import Any

from mlvault.errors import ReviewError, ReviewReason


def request_review(
    lambda_client: Any, sts: Any, function_name: str, *, key: str, version_id: str, decision: str, reason: str
) -> dict:
    """What `mlvault review` does: ask the review function, as the caller's identity, to decide a held upload.
    Returns the decided record; raises ReviewError when the function refuses."""
    event = {"key": key, "version_id": version_id, "decision": decision, "reason": reason}
    event["reviewed_by"] = sts.get_caller_identity()["Arn"]  # who: the identity these credentials prove
    response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event))
    result = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        message = str(result.get("errorMessage", result))
        code, _, detail = message.partition(": ")
        if result.get("errorType") == "ReviewError" and code in ReviewReason.__members__:
            raise ReviewError(code, f"review refused: {detail}")
        raise RuntimeError(f"the review function failed: {message}")
    return result

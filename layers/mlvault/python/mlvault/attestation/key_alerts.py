"""When the model-signing key itself is refused (disabled, pending deletion, not the bundled one, or the bundled
anchors unusable), signing and deployment stop, and that is announced once per blocked run and step: an SNS alert
and a `Model Pipeline Blocked` event, through the registry's outbox (never lost)."""

from __future__ import annotations

from typing import Any

from mlvault.errors import AnchorReason, MlvaultError, ServeReason
from mlvault.outbox import Alert, Announcement, Event
from mlvault.wiring import DetailType, Source

# The refusals that are about the key (or the anchors naming it), not about one model.
KEY_REFUSALS = frozenset(
    {
        ServeReason.SIGNING_KEY_UNUSABLE,
        ServeReason.SIGNING_KEY_NOT_PINNED,
        AnchorReason.SIGNING_KEY_NOT_TRUSTED,
        AnchorReason.ANCHORS_MISSING,
        AnchorReason.ANCHORS_MALFORMED,
        AnchorReason.ANCHORS_WRONG_STAGE,
    }
)


def is_key_refusal(err: MlvaultError) -> bool:
    return err.reason in KEY_REFUSALS


def blocked(*, stage: str, step: str, run_id: str, model_id: str, err: MlvaultError, topic_arn: str) -> Announcement:
    """The announcement of a run blocked at `step` (sign, deploy) by a refused signing key."""
    detail: dict[str, Any] = {
        "stage": stage,
        "step": step,
        "run_id": run_id,
        "model_id": model_id,
        "reason": str(err.reason),
        "detail": err.detail,
        "what": f"{step} refused: the model-signing key cannot be used ({err.reason}); nothing was {step}ed",
    }
    return Announcement.of(
        kind="pipeline-blocked",
        subject=f"{run_id}#{step}",
        event=Event(source=Source.MODELS, detail_type=DetailType.PIPELINE_BLOCKED, detail=detail),
        alert=Alert(
            topic_arn=topic_arn,
            subject=f"mlvault {stage}: {step} blocked, {err.reason}",
            message=detail,
            attributes={"stage": stage, "reason": str(err.reason)},
        ),
    )

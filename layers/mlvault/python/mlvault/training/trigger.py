"""Starting the model pipeline: debounced on accepted batches, on a schedule, or by hand (`mlvault train`).

Debounce: executions are named `<dataset>-<window>` (windows of `debounce_seconds`), so every batch accepted in
one window starts the same execution once (Step Functions refuses a second execution of the same name). The
execution first waits until its window closes, so its manifest holds every batch accepted in the window.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from mlvault.config import TriggerSettings
from mlvault.wiring import DetailType


def _start(sfn: Any, arn: str, name: str, dataset: str, wait: int, trigger: str) -> bool:
    payload = {"dataset": dataset, "debounce_seconds": max(0, wait), "trigger": trigger}
    try:
        sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    except sfn.exceptions.ExecutionAlreadyExists:
        return False  # this window's execution is already waiting: it will include the batch
    return True


def start_training(
    event: dict[str, Any], settings: TriggerSettings, *, sfn: Any = None, now: float | None = None
) -> list[str]:
    """The executions an event starts (names); none for datasets that are not trained."""
    import boto3

    sfn = sfn or boto3.client("stepfunctions")
    now = time.time() if now is None else now
    trained = [d for d in settings.datasets.split(",") if d]
    if event.get("detail-type") == DetailType.UPLOAD_ACCEPTED:
        datasets = [d for d in [event.get("detail", {}).get("dataset")] if d in trained]
        trigger = "ingest"
    elif event.get("detail-type") == "Scheduled Event":
        datasets, trigger = trained, "schedule"
    else:
        raise ValueError(f"not a training trigger: {event.get('detail-type')!r}")
    window = settings.debounce_seconds or 1
    start = int(now // window) * window
    started = []
    for dataset in datasets:
        name = f"{dataset}-{trigger}-{datetime.fromtimestamp(start, UTC):%Y%m%dT%H%M%S}"
        if _start(sfn, settings.state_machine_arn, name, dataset, int(start + window - now), trigger):
            started.append(name)
    return started


def start_manual(sfn: Any, arn: str, dataset: str) -> str:
    """`mlvault train --dataset D`: a run now, named by the time it was asked for."""
    name = f"{dataset}-manual-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    _start(sfn, arn, name, dataset, 0, "manual")
    return name

"""Starting the model pipeline: debounced on accepted batches, on a schedule, or by hand (`mlvault train`).

Each model has its own pipeline (`TriggerSettings.pipelines`): an accepted batch of a dataset starts the pipeline
of every model trained on it, the schedule every model's. Debounce: executions are named
`<model>-<trigger>-<window>` (windows of `debounce_seconds`; a model's run ids start with its name, which its
training jobs' names and permissions rely on), so every batch accepted in one window starts the same execution once
(Step Functions refuses a second execution of the same name). The execution first waits until its window closes,
so its manifest holds every batch accepted in the window.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from mlvault.config import TriggerSettings
from mlvault.wiring import DetailType


def _start(sfn: Any, arn: str, name: str, dataset: str, wait: int, trigger: str, model: str = "") -> bool:
    payload = {"dataset": dataset, "model": model or dataset, "debounce_seconds": max(0, wait), "trigger": trigger}
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
    pipelines = settings.pipelines()
    if event.get("detail-type") == DetailType.UPLOAD_ACCEPTED:
        dataset = event.get("detail", {}).get("dataset")
        models = [m for m, (d, _) in pipelines.items() if d == dataset]
        trigger = "ingest"
    elif event.get("detail-type") == "Scheduled Event":
        models, trigger = list(pipelines), "schedule"
    else:
        raise ValueError(f"not a training trigger: {event.get('detail-type')!r}")
    window = settings.debounce_seconds or 1
    start = int(now // window) * window
    started = []
    for model in models:
        dataset, arn = pipelines[model]
        name = f"{model}-{trigger}-{datetime.fromtimestamp(start, UTC):%Y%m%dT%H%M%S}"
        if _start(sfn, arn, name, dataset, int(start + window - now), trigger, model):
            started.append(name)
    return started


def start_manual(sfn: Any, arn: str, dataset: str, model: str = "") -> str:
    """`mlvault train`: a run of a model's pipeline now, named `<model>-manual-<time asked>` (the model defaults to
    the dataset's own, as before models had names)."""
    name = f"{model or dataset}-manual-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    _start(sfn, arn, name, dataset, 0, "manual", model)
    return name

"""Starting the pipeline: accepted batches are debounced into one run per window; the schedule trains all."""

from __future__ import annotations

import pytest

from mlvault.config import TriggerSettings
from mlvault.training.trigger import start_training

SETTINGS = TriggerSettings(stage="t", state_machine_arn="arn:sm", datasets="iris,sales", debounce_seconds=60)


class FakeStepFunctions:
    class exceptions:
        class ExecutionAlreadyExists(Exception):
            pass

    def __init__(self) -> None:
        self.started: dict[str, dict] = {}

    def start_execution(self, *, stateMachineArn, name, input):
        if name in self.started:
            raise self.exceptions.ExecutionAlreadyExists(name)
        self.started[name] = {"arn": stateMachineArn, "input": input}


def accepted(dataset: str) -> dict:
    return {"detail-type": "Upload Accepted", "detail": {"dataset": dataset}}


def test_batches_in_one_window_start_one_run_that_waits_for_the_window_to_close():
    sfn = FakeStepFunctions()
    # windows of 60 s: [999_999_960, 1_000_000_020) is 01:46:00-01:47:00 UTC on 2001-09-09
    assert start_training(accepted("iris"), SETTINGS, sfn=sfn, now=999_999_970) == ["iris-ingest-20010909T014600"]
    assert start_training(accepted("iris"), SETTINGS, sfn=sfn, now=1_000_000_010) == []
    (run,) = sfn.started.values()
    assert '"debounce_seconds": 50' in run["input"]
    assert start_training(accepted("iris"), SETTINGS, sfn=sfn, now=1_000_000_030) == ["iris-ingest-20010909T014700"]


def test_untrained_datasets_start_nothing_and_the_schedule_trains_every_dataset():
    sfn = FakeStepFunctions()
    assert start_training(accepted("events"), SETTINGS, sfn=sfn, now=0) == []
    assert len(start_training({"detail-type": "Scheduled Event"}, SETTINGS, sfn=sfn, now=0)) == 2


def test_anything_else_is_refused():
    with pytest.raises(ValueError, match="not a training trigger"):
        start_training({"detail-type": "Object Created"}, SETTINGS, sfn=FakeStepFunctions(), now=0)

"""Starting the pipeline: accepted batches are debounced into one run per window; the schedule trains all."""

from __future__ import annotations

import json

import pytest

from mlvault.config import TriggerSettings
from mlvault.training.trigger import start_training

SETTINGS = TriggerSettings(stage="t", state_machine_arn="arn:sm", datasets="iris,sales", debounce_seconds=60)
MODELS = TriggerSettings(
    stage="t",
    debounce_seconds=60,
    model_pipelines=json.dumps(
        {
            "iris": {"dataset": "iris", "state_machine_arn": "arn:iris"},
            "credit": {"dataset": "credit", "state_machine_arn": "arn:credit"},
            "creditgbm": {"dataset": "credit", "state_machine_arn": "arn:creditgbm"},
        }
    ),
)


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


def test_an_accepted_batch_starts_every_model_trained_on_its_dataset_each_its_own_pipeline():
    sfn = FakeStepFunctions()
    started = start_training(accepted("credit"), MODELS, sfn=sfn, now=999_999_970)
    assert started == ["credit-ingest-20010909T014600", "creditgbm-ingest-20010909T014600"]
    assert [sfn.started[n]["arn"] for n in started] == ["arn:credit", "arn:creditgbm"]
    assert json.loads(sfn.started[started[0]]["input"])["model"] == "credit"
    assert len(start_training({"detail-type": "Scheduled Event"}, MODELS, sfn=sfn, now=0)) == 3


def test_the_settings_read_the_model_pipelines_or_the_old_single_pipeline():
    env = {
        "MLVAULT_STAGE": "t",
        "MLVAULT_TRAIN_DEBOUNCE_SECONDS": "60",
        "MLVAULT_MODEL_PIPELINES": MODELS.model_pipelines,
    }
    assert TriggerSettings.from_env(env).pipelines()["credit"] == ("credit", "arn:credit")
    old = {
        "MLVAULT_STAGE": "t",
        "MLVAULT_TRAIN_DEBOUNCE_SECONDS": "60",
        "MLVAULT_STATE_MACHINE_ARN": "arn:sm",
        "MLVAULT_TRAIN_DATASETS": "iris",
    }
    assert TriggerSettings.from_env(old).pipelines() == {"iris": ("iris", "arn:sm")}

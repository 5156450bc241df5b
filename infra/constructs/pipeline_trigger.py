"""What starts model pipeline runs: an accepted batch of a dataset starts the pipeline of every model trained on it
(debounced into windows by the trigger function), and a nightly schedule every model's. `mlvault train` starts one
directly. Which pipelines a dataset starts is configuration (`MLVAULT_MODEL_PIPELINES`): starting a run decides no
trust, the run re-checks everything."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from mlvault.wiring import DetailType, Env, Source

EVERY_NIGHT = Duration.days(1)


class PipelineTrigger(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        pipelines: dict[str, sfn.IStateMachine],
    ) -> None:
        """`pipelines`: each model's state machine, by model name."""
        super().__init__(scope, construct_id)
        settings = platform.settings
        routes = {
            model.name: {"dataset": model.dataset, "state_machine_arn": pipelines[model.name].state_machine_arn}
            for model in settings.models
        }
        self.function = fn = SecureFunction(
            self,
            "Trigger",
            platform=platform,
            name="trigger",
            description="Starts the pipelines of the models trained on a dataset, on accepted batches (debounced) "
            "and on the schedule",
            environment={
                Env.MODEL_PIPELINES: Stack.of(self).to_json_string(routes),
                Env.TRAIN_DEBOUNCE_SECONDS: str(settings.train_debounce_seconds),
            },
        )
        fn.allow(["states:StartExecution"], [sm.state_machine_arn for sm in pipelines.values()])
        events.Rule(
            self,
            "OnAcceptedBatch",
            event_pattern=events.EventPattern(
                source=[Source.INGEST],
                detail_type=[DetailType.UPLOAD_ACCEPTED],
                detail={"dataset": list(settings.train_datasets)},
            ),
            targets=[targets.LambdaFunction(fn.function)],
        )
        events.Rule(
            self,
            "Nightly",
            schedule=events.Schedule.rate(EVERY_NIGHT),
            targets=[targets.LambdaFunction(fn.function)],
        )

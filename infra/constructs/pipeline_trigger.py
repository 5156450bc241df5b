"""What starts a model pipeline run: accepted batches of the trained datasets (debounced into windows by the
trigger function) and a nightly schedule. `mlvault train` starts one directly."""

from __future__ import annotations

from aws_cdk import Duration
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
        state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = platform.settings
        self.function = fn = SecureFunction(
            self,
            "Trigger",
            platform=platform,
            name="trigger",
            description="Starts the model pipeline on accepted batches (debounced) and on the schedule",
            environment={
                Env.STATE_MACHINE_ARN: state_machine.state_machine_arn,
                Env.TRAIN_DATASETS: ",".join(settings.train_datasets),
                Env.TRAIN_DEBOUNCE_SECONDS: str(settings.train_debounce_seconds),
            },
        )
        fn.allow(["states:StartExecution"], [state_machine.state_machine_arn])
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

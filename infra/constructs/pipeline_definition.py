"""One model's pipeline: a state machine `mlvault-<stage>-<model>-pipeline` over the shared pipeline, sign and deploy
functions (infra/constructs/model_pipeline.py).

- engine lambda: debounce -> train -> evaluate -> register -> sign [-> approval] -> deploy in canary steps;
- engine sagemaker: debounce -> prepare (the job's channels) -> the training job (`createTrainingJob.sync`,
  infra/constructs/training_job.py) -> collect (the model package) -> evaluate -> register -> sign [-> approval]
  -> deploy in canary steps.

The model and its dataset are constants of the definition, never taken from the execution's input. Every failed
step before the rollout, the training job included (its catch carries SageMaker's description of the job as the
Cause), ends its run (RecordFailure: the run record names the step and the reason) before the execution fails with
the step's own error; a failed step during the rollout, or an alarm, rolls back.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.constructs.model_pipeline import ModelPipeline
from infra.constructs.model_resources import ModelResources
from infra.constructs.model_source import ModelSource
from infra.constructs.training_job import TrainingJob, TrainingRole, job_prefix
from infra.model_settings import ENGINE_SAGEMAKER, ModelSettings
from infra.policy.nag import acknowledge

BASE_TIMEOUT = Duration.hours(6)  # everything but the training job and a human's approval
APPROVAL_TIMEOUT = Duration.days(7)


def state_machine_name(prefix: str, model: str) -> str:
    return f"{prefix}-{model}-pipeline"


def timeout_of(model: ModelSettings, *, manual_approval: bool) -> Duration:
    """The execution's limit: the steps, plus the job's own limit (its wait for spot capacity included), plus the
    approval's."""
    seconds = int(BASE_TIMEOUT.to_seconds())
    if model.job is not None:
        seconds += model.job.max_wait_seconds or model.job.max_runtime_seconds
    if manual_approval:
        seconds += int(APPROVAL_TIMEOUT.to_seconds())
    return Duration.seconds(seconds)


class ModelStateMachine(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        model: ModelSettings,
        functions: ModelPipeline,
        models: ModelResources,
        source: ModelSource | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = platform.settings
        self.model = model
        self._functions = functions
        own = Construct(self, model.scope_id)  # leads the logical ids: IrisModelPipeline...
        self._own = own
        self.name = state_machine_name(settings.prefix, model.name)
        self.training_role: TrainingRole | None = None
        training: sfn.IChainable | None = None
        if model.engine == ENGINE_SAGEMAKER:
            assert source is not None, f"model {model.name}: a sagemaker model needs its source asset"
            self.training_role = TrainingRole(
                own,
                "Training",
                settings=settings,
                model=model,
                model_bucket=models.model_bucket,
                data_key=platform.data_key,
            )
            training = TrainingJob(
                own,
                "TrainingJob",
                settings=settings,
                model=model,
                role=self.training_role,
                model_bucket=models.model_bucket,
                data_key=platform.data_key,
            )
        self.state_machine = sfn.StateMachine(
            own,
            "ModelPipeline",
            state_machine_name=self.name,
            definition_body=sfn.DefinitionBody.from_chainable(
                self._definition(training, source, manual_approval=settings.manual_approval)
            ),
            timeout=timeout_of(model, manual_approval=settings.manual_approval),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=platform.log_group(own, "PipelineLogs", name=f"states/{model.name}-pipeline"),
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
        )
        functions.acknowledge_invoker(self.state_machine.role)
        if self.training_role is not None:
            acknowledge(
                self.state_machine.role,
                f"AwsSolutions-IAM5[Resource::arn:aws:sagemaker:{settings.region}:<AWS::AccountId>:"
                f"training-job/{job_prefix(settings, model)}*]",
                "The state machine starts, follows and stops the model's training jobs only: they are named per run "
                "with the model's job-name prefix.",
            )

    # --- the definition ----------------------------------------------------------------------------------------

    def _step(self, fn: SecureFunction, name: str, payload: dict, result_path: str = "$.state") -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self._own,
            name,
            lambda_function=fn.function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            result_path=result_path,
            retry_on_service_exceptions=True,
        )

    def _run(self) -> dict:
        """The run as the definition names it: the model and dataset are constants, the run id the execution's."""
        return {"model": self.model.name, "dataset": self.model.dataset, "run_id.$": "$$.Execution.Name"}

    def _definition(
        self, training: sfn.IChainable | None, source: ModelSource | None, *, manual_approval: bool
    ) -> sfn.IChainable:
        own, fns = self._own, self._functions
        state = {"state.$": "$.state"}
        execution = {"execution.$": "$$.Execution.Id"}  # the execution ARN: owns the deployment lock
        debounce = sfn.Wait(own, "Debounce", time=sfn.WaitTime.seconds_path("$.debounce_seconds"))
        evaluate = self._step(fns.pipeline, "Evaluate", {"step": "evaluate", **state})
        register = self._step(fns.pipeline, "Register", {"step": "register", **state})
        sign = self._step(fns.sign, "SignModel", state)
        prepare = self._step(fns.deploy, "Prepare", {"action": "prepare", **state, **execution})
        prepare.add_retry(errors=["DeploymentLocked"], interval=Duration.seconds(2), max_attempts=5, backoff_rate=2)
        advance = self._step(fns.deploy, "Advance", {"action": "advance", **state, **execution})
        check = self._step(fns.deploy, "CheckAlarms", {"action": "check", **state, **execution})
        promote = self._step(fns.deploy, "Promote", {"action": "promote", **state, **execution})
        rollback = self._step(fns.deploy, "Rollback", {"action": "rollback", **state, **execution})
        bake = sfn.Wait(own, "Bake", time=sfn.WaitTime.seconds_path("$.state.rollout.wait_seconds"))
        rolled_back = sfn.Fail(own, "RolledBack", error="RolledBack", cause="a serving alarm fired during the canary")
        for task in (advance, check, promote):  # the error travels with the state: the rollback records it
            task.add_catch(rollback, errors=["States.ALL"], result_path="$.state.error")
        rollback.next(rolled_back)
        run_failed = sfn.Fail(own, "RunFailed", error_path="$.error.Error", cause_path="$.error.Cause")
        record_failure = self._step(
            fns.pipeline,
            "RecordFailure",
            {"step": "fail", "state": self._run(), "failed_step.$": "$.failed_step", "error.$": "$.error"},
            result_path=sfn.JsonPath.DISCARD,
        )
        record_failure.add_catch(run_failed, errors=["States.ALL"], result_path="$.record_error")
        record_failure.next(run_failed)

        def ends_the_run(task: sfn.TaskStateBase, name: str) -> None:
            mark = sfn.Pass(
                own, f"{task.node.id}Failed", result=sfn.Result.from_string(name), result_path="$.failed_step"
            )
            task.add_catch(mark, errors=["States.ALL"], result_path="$.error")
            mark.next(record_failure)

        if training is None:  # engine lambda: the built-in trainer in the pipeline function
            train = self._step(fns.pipeline, "Train", {"step": "train", "state": self._run()})
            ends_the_run(train, "train")
            chain = debounce.next(train).next(evaluate)
        else:  # engine sagemaker: prepare the channels, run the job, collect its model package
            assert source is not None
            inputs = self._step(
                fns.pipeline,
                "PrepareInputs",
                {"step": "prepare", "state": {**self._run(), "code_sha256": source.sha256}},
            )
            collect = self._step(fns.pipeline, "Collect", {"step": "collect", **state, "job.$": "$.training_job"})
            for task, name in ((inputs, "prepare"), (training, "train"), (collect, "collect")):
                ends_the_run(task, name)
            chain = debounce.next(inputs).next(training).next(collect).next(evaluate)
        for task, name in ((evaluate, "evaluate"), (register, "register"), (sign, "sign")):
            ends_the_run(task, name)
        ends_the_run(prepare, "deploy")
        ends_the_run(rollback, "rollback")
        alarm = sfn.Choice(own, "AlarmFired?")
        alarm.when(sfn.Condition.is_not_null("$.state.rollout.alarm"), rollback).otherwise(advance)
        done = sfn.Choice(own, "FullyShifted?")
        done.when(sfn.Condition.boolean_equals("$.state.rollout.done", True), promote).otherwise(bake)
        bake.next(check)
        check.next(alarm)
        chain = chain.next(register).next(sign)
        if manual_approval:  # a human approves the signed model (mlvault models approve|reject)
            approval = tasks.LambdaInvoke(
                own,
                "AwaitApproval",
                lambda_function=fns.deploy.function,
                integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
                payload=sfn.TaskInput.from_object(
                    {"action": "request_approval", **state, **execution, "token": sfn.JsonPath.task_token}
                ),
                result_path="$.state",
                task_timeout=sfn.Timeout.duration(APPROVAL_TIMEOUT),
            )
            ends_the_run(approval, "approval")
            chain = chain.next(approval)
        definition = chain.next(prepare).next(advance).next(done)
        promote.next(sfn.Succeed(own, "Deployed"))
        return definition

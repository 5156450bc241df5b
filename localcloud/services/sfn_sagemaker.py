"""Step Functions' optimized SageMaker integration for training jobs (gap 24).

24. Step Functions `sagemaker:createTrainingJob.sync`. moto's executor sends every `sagemaker` task to an
   "unsupported" handler: request-response calls are forwarded with a warning, `.sync` raises RuntimeError. Here
   `arn:aws:states:::sagemaker:createTrainingJob` calls CreateTrainingJob with the task's credentials (the state
   machine's role, services/stepfunctions.py, gap 7; so iam:PassRole of the job's role and the sagemaker actions
   are authorized against that role) and answers `{"TrainingJobArn"}`; `.sync` then polls DescribeTrainingJob with
   the same role until the job ends, and outputs DescribeTrainingJob's response (timestamps as epoch milliseconds,
   as Step Functions serializes them), so `$.ModelArtifacts.S3ModelArtifacts` is the artifact. A job that ends
   Failed or Stopped fails the task with `States.TaskFailed`, its cause the JSON of DescribeTrainingJob (so
   FailureReason, or SecondaryStatus MaxRuntimeExceeded, is in `$.Cause`). A refused CreateTrainingJob fails the task
   with `SageMaker.<Exception>` (`SageMaker.AmazonSageMakerException` for errors SageMaker does not model, as
   ValidationException and AccessDeniedException; `SageMaker.ResourceInUseException`...) and the SDK's cause
   ("<message> (Service: AmazonSageMaker; Status Code: 400; Error Code: ...; Request ID: ...; Proxy: null)"). An
   execution stopped while it waits stops the job (StopTrainingJob with the role). Parameters the API does not take
   fail the task with States.Runtime ("The field \"X\" is not supported by Step Functions"). Creating a state
   machine with a `.sync` training task needs its role to manage Step Functions' rule for SageMaker events
   (events:PutTargets, events:PutRule, events:DescribeRule on rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule),
   else AccessDeniedException "'<role>' is not authorized to create managed-rule.". Other SageMaker actions keep
   moto's behaviour.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

LOG = logging.getLogger(__name__)
MANAGED_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
TRAINING = "createTrainingJob"
MODELED = {"ResourceInUse", "ResourceLimitExceeded", "ResourceNotFound"}
FAILED = {"Failed", "Stopped"}


def millis(value: Any) -> Any:
    """DescribeTrainingJob's output as Step Functions writes it: timestamps in epoch milliseconds."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [millis(v) for v in value]
    return value


def sdk_error(error: Any) -> tuple[str, str]:
    """(Step Functions error name, cause) of a SageMaker API error, as the AWS SDK for Java names it."""
    code = error.response["Error"]["Code"]
    name = f"SageMaker.{code}Exception" if code in MODELED else "SageMaker.AmazonSageMakerException"
    status = error.response["ResponseMetadata"].get("HTTPStatusCode", 400)
    request_id = error.response["ResponseMetadata"].get("RequestId", "")
    cause = (
        f"{error.response['Error'].get('Message', '')} (Service: AmazonSageMaker; Status Code: {status}; "
        f"Error Code: {code}; Request ID: {request_id}; Proxy: null)"
    )
    return name, cause


def _task_class(cloud: LocalCloud) -> type:
    import botocore.session
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    api = botocore.session.get_session().get_service_model("sagemaker")
    parameters = set(api.operation_model("CreateTrainingJob").input_shape.members)

    class StateTaskServiceSageMaker(StateTaskServiceCallback):
        def __init__(self) -> None:
            super().__init__(supported_integration_patterns={ResourceCondition.Sync})

        def _is_training(self) -> bool:
            return self.resource.api_action == TRAINING

        def _validate_service_integration_is_supported(self) -> None:
            if not self._is_training():  # moto's behaviour for the other SageMaker actions
                LOG.warning("Unsupported optimised integration %s: forwarded", self.resource.resource_arn)

        def _failure(self, env: Any, error: Any, cause: str, states: Any = None) -> Exception:
            name = states.to_name() if states is not None else error
            return FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=states) if states is not None else CustomErrorName(error),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            error=name,
                            cause=cause,
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                        )
                    ),
                )
            )

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if isinstance(ex, ClientError):
                name, cause = sdk_error(ex)
                return self._failure(env, name, cause).failure_event
            return super()._from_error(env=env, ex=ex)

        def _client(self, region: str, credentials: Any) -> Any:
            return boto_client.boto_client_for(region=region, service="sagemaker", state_credentials=credentials)

        def _eval_service_task(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            if self._is_training():
                unknown = sorted(set(normalised_parameters) - parameters)
                if unknown:
                    raise self._failure(
                        env,
                        None,
                        f'The field "{unknown[0]}" is not supported by Step Functions',
                        StatesErrorNameType.StatesRuntime,
                    )
            client = self._client(resource_runtime_part.region, state_credentials)
            response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
            response.pop("ResponseMetadata", None)
            env.stack.append(millis(response))

        def _build_sync_resolver(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> Callable[[], Any]:
            if not self._is_training():
                raise RuntimeError(f"Unsupported .sync callback procedure in resource {self.resource.resource_arn}")
            env.stack.pop()  # CreateTrainingJob's answer
            name = normalised_parameters["TrainingJobName"]
            client = self._client(resource_runtime_part.region, state_credentials)

            def resolver() -> Any:
                described = client.describe_training_job(TrainingJobName=name)
                described.pop("ResponseMetadata", None)
                status = described["TrainingJobStatus"]
                if status == "Completed":
                    return millis(described)
                if status in FAILED:
                    raise self._failure(env, None, to_json_str(millis(described)), StatesErrorNameType.StatesTaskFailed)
                return None

            resolver.job = (client, name)  # type: ignore[attr-defined]
            return resolver

        def _eval_integration_pattern(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            # moto's version assumes a task token endpoint, which a `.sync` task of SageMaker has none of
            self.timeout.eval(env=env)
            env.stack.pop()  # the task's TimeoutSeconds: the state's own timer enforces it
            resolver = self._build_sync_resolver(env, resource_runtime_part, normalised_parameters, state_credentials)
            outcome = self._eval_sync(
                env=env, sync_resolver=resolver, timeout_seconds=None, callback_endpoint=None, heartbeat_endpoint=None
            )
            env.stack.append(outcome)

        def _eval_sync(self, env: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return super()._eval_sync(env, *args, **kwargs)
            finally:
                job = getattr(kwargs.get("sync_resolver"), "job", None)
                if job is not None and not env.is_running():  # stopped while the job ran: SageMaker is told so
                    client, name = job
                    try:
                        client.stop_training_job(TrainingJobName=name)
                    except ClientError as err:
                        LOG.info("StopTrainingJob of %s after the execution stopped: %s", name, err)

    return StateTaskServiceSageMaker


def _managed_rule_check(cloud: LocalCloud) -> None:
    from moto.core.exceptions import ServiceException
    from moto.stepfunctions.models import StepFunctionBackend

    from localcloud.iam_actions import Need

    class AccessDeniedException(ServiceException):
        code = "AccessDeniedException"

    original = StepFunctionBackend.create_state_machine

    def create_state_machine(self: Any, name: str, definition: str, roleArn: str, *args: Any, **kwargs: Any) -> Any:
        if _uses_training_sync(definition):
            rule = f"arn:aws:events:{cloud.region}:{cloud.account}:rule/{MANAGED_RULE}"
            caller = cloud.authorizer.caller_for_role(roleArn)
            for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
                if not cloud.authorizer.decide(caller, Need(action, rule)).allowed:
                    raise AccessDeniedException(f"'{roleArn}' is not authorized to create managed-rule.")
        return original(self, name, definition, roleArn, *args, **kwargs)

    StepFunctionBackend.create_state_machine = create_state_machine


def _uses_training_sync(definition: str) -> bool:
    try:
        document = json.loads(definition)
    except ValueError:
        return False
    found = False

    def walk(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            resource = node.get("Resource")
            if isinstance(resource, str) and resource.endswith(f":sagemaker:{TRAINING}.sync"):
                found = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def install(cloud: LocalCloud) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    task_class = _task_class(cloud)
    original = state_task_factory.state_task_service_for

    def state_task_service_for(service_name: str) -> Any:
        return task_class() if service_name == "sagemaker" else original(service_name=service_name)

    state_task_factory.state_task_service_for = state_task_service_for
    _managed_rule_check(cloud)

"""SageMaker training jobs (gap 23): the API (requests validated by sagemaker_validation.py); sagemaker_runner.py
runs the jobs.

23. SageMaker training jobs. moto stores a training job as Completed the moment it is created, runs nothing,
   writes nothing to S3 and has no StopTrainingJob. Here CreateTrainingJob validates what SageMaker validates of
   what the local cloud runs (the name's pattern and uniqueness, ResourceInUse; a role that exists and trusts
   sagemaker.amazonaws.com for this job (aws:SourceAccount, aws:SourceArn), ValidationException "Could not assume
   role ..."; `iam:PassRole` with `iam:PassedToService` and `sagemaker:AddTags` for tags are authorized by authz.py,
   gap 14; TrainingInputMode, channels of S3DataSource S3Prefix or ManifestFile with unique names, S3 URIs as
   `s3://` or `https://` forms, the instance type, MaxRuntimeInSeconds of at most 28 days (default one day), the
   managed spot wait, at most 100 hyperparameters of string values up to 2,500 characters, at most 50 tags) and
   starts the job: InProgress with SecondaryStatus Starting, then Downloading, Training, Uploading and Completed,
   Failed (FailureReason) or, after StopTrainingJob or past MaxRuntimeInSeconds, Stopping then Stopped
   (SecondaryStatus Stopped or MaxRuntimeExceeded, no FailureReason: the transition's StatusMessage says why), as
   sagemaker_runner.py describes. DescribeTrainingJob answers botocore's shape (statuses,
   SecondaryStatusTransitions, ModelArtifacts.S3ModelArtifacts once uploaded, timestamps, TrainingTimeInSeconds, the
   request echoed with SageMaker's defaults), "Requested resource not found." for an unknown job; StopTrainingJob
   refuses a job that is not InProgress ("The request was rejected because the training job is in status X.");
   ListTrainingJobs filters, sorts and pages. The training image URI is recorded, never pulled: every image runs its
   script-mode behaviour with the local venv (sagemaker_toolkit.py). What SageMaker can do that the local cloud does
   not run (Pipe and FastFile input, several instances, VPCs, checkpoints, warm pools, debugger and profiler rules,
   ...) is refused with NotImplemented (501), naming the parameter.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from localcloud.services.sagemaker_validation import SageMakerError, invalid, job_arn, validate

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass
class TrainingJob:
    name: str
    arn: str
    request: dict[str, Any]
    tags: list[dict[str, str]]
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "InProgress"
    secondary: str = "Starting"
    failure_reason: str = ""
    transitions: list[dict[str, Any]] = field(default_factory=list)
    training_start: datetime | None = None
    training_end: datetime | None = None
    last_modified: datetime | None = None
    model_artifacts: str | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.last_modified = self.created
        self.transitions.append(
            {"Status": "Starting", "StartTime": self.created, "StatusMessage": "Launching requested ML instances"}
        )

    @property
    def role_arn(self) -> str:
        return self.request["RoleArn"]

    @property
    def max_runtime(self) -> int:
        return int(self.request["StoppingCondition"]["MaxRuntimeInSeconds"])

    def enter(self, secondary: str, message: str, status: str | None = None, failure_reason: str = "") -> None:
        """A new secondary status (and primary status): the previous transition ends now."""
        with self.lock:
            now = datetime.now(UTC)
            if self.transitions and "EndTime" not in self.transitions[-1]:
                self.transitions[-1]["EndTime"] = now
            entry = {"Status": secondary, "StartTime": now, "StatusMessage": message}
            if status in TERMINAL:
                entry["EndTime"] = now
                self.training_end = now
            self.transitions.append(entry)
            self.secondary, self.last_modified = secondary, now
            if status is not None:
                self.status = status
            if failure_reason:
                self.failure_reason = failure_reason[:1024]

    def describe(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary,
                "HyperParameters": dict(self.request.get("HyperParameters", {})),
                "AlgorithmSpecification": dict(self.request["AlgorithmSpecification"]),
                "RoleArn": self.role_arn,
                "InputDataConfig": [dict(c) for c in self.request.get("InputDataConfig", [])],
                "OutputDataConfig": dict(self.request["OutputDataConfig"]),
                "ResourceConfig": dict(self.request["ResourceConfig"]),
                "StoppingCondition": dict(self.request["StoppingCondition"]),
                "CreationTime": self.created,
                "LastModifiedTime": self.last_modified,
                "SecondaryStatusTransitions": [dict(t) for t in self.transitions],
                "EnableNetworkIsolation": bool(self.request.get("EnableNetworkIsolation", False)),
                "EnableInterContainerTrafficEncryption": bool(
                    self.request.get("EnableInterContainerTrafficEncryption", False)
                ),
                "EnableManagedSpotTraining": bool(self.request.get("EnableManagedSpotTraining", False)),
            }
            if self.model_artifacts:
                out["ModelArtifacts"] = {"S3ModelArtifacts": self.model_artifacts}
            if self.failure_reason:
                out["FailureReason"] = self.failure_reason
            if self.request.get("Environment"):
                out["Environment"] = dict(self.request["Environment"])
            if self.training_start:
                out["TrainingStartTime"] = self.training_start
            if self.training_end:
                out["TrainingEndTime"] = self.training_end
                seconds = int((self.training_end - (self.training_start or self.created)).total_seconds())
                out["TrainingTimeInSeconds"] = out["BillableTimeInSeconds"] = max(1, seconds)
            return out

    def summary(self) -> dict[str, Any]:
        with self.lock:
            out = {
                "TrainingJobName": self.name,
                "TrainingJobArn": self.arn,
                "CreationTime": self.created,
                "LastModifiedTime": self.last_modified,
                "TrainingJobStatus": self.status,
                "SecondaryStatus": self.secondary,
            }
            if self.training_end:
                out["TrainingEndTime"] = self.training_end
            return out


# --- the API ----------------------------------------------------------------------------------------------


class TrainingJobs:
    """The training jobs of the local cloud (kept in moto's backend, so that ListTags and AddTags find them)."""

    def __init__(self, cloud: LocalCloud) -> None:
        from localcloud.sagemaker_runner import JobRunner

        self._cloud = cloud
        self.runner = JobRunner(cloud)
        self._lock = threading.Lock()

    def _store(self) -> dict[str, Any]:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[self._cloud.account][self._cloud.region].training_jobs

    def create(self, params: dict[str, Any]) -> TrainingJob:
        request = validate(self._cloud, params)
        name = request["TrainingJobName"]
        arn = job_arn(self._cloud, name)
        with self._lock:
            if name.lower() in self._store():
                raise SageMakerError(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a training job with "
                    f"this name already exists ({arn})",
                )
            job = TrainingJob(name=name, arn=arn, request=request, tags=list(request.get("Tags") or []))
            self._store()[name.lower()] = job  # as its ARN names it (moto's ListTags and AddTags look it up so)
        self._cloud.record({"kind": "training-job", "job": name, "status": "InProgress", "image": _image(request)})
        self.runner.start(job)
        return job

    def get(self, name: str) -> TrainingJob:
        job = self._store().get(name.lower())
        if not isinstance(job, TrainingJob):
            raise invalid("Requested resource not found.")
        return job

    def stop(self, name: str) -> None:
        job = self.get(name)
        with job.lock:
            status = job.status
        if status != "InProgress":
            raise invalid(f"The request was rejected because the training job is in status {status}.")
        job.stop_requested.set()
        job.enter("Stopping", "Stopping the training job", status="Stopping")

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = [j for j in self._store().values() if isinstance(j, TrainingJob)]
        for key, test in (
            ("NameContains", lambda j, v: v.lower() in j.name.lower()),
            ("StatusEquals", lambda j, v: j.status == v),
            ("CreationTimeAfter", lambda j, v: j.created > v),
            ("CreationTimeBefore", lambda j, v: j.created < v),
            ("LastModifiedTimeAfter", lambda j, v: j.last_modified > v),
            ("LastModifiedTimeBefore", lambda j, v: j.last_modified < v),
        ):
            if params.get(key) is not None:
                jobs = [j for j in jobs if test(j, params[key])]
        sort = {"Name": lambda j: j.name, "CreationTime": lambda j: j.created, "Status": lambda j: j.status}
        by = params.get("SortBy", "CreationTime")
        if by not in sort or params.get("SortOrder", "Ascending") not in ("Ascending", "Descending"):
            raise invalid(f"Invalid SortBy {by!r} or SortOrder {params.get('SortOrder')!r}")
        jobs.sort(key=sort[by], reverse=params.get("SortOrder") == "Descending")
        size = int(params.get("MaxResults") or 10)
        if not 1 <= size <= 100:
            raise invalid(f"Value '{size}' at 'maxResults' failed to satisfy constraint: Member must be 1 to 100")
        start = int(params.get("NextToken") or 0)
        out: dict[str, Any] = {"TrainingJobSummaries": [j.summary() for j in jobs[start : start + size]]}
        if start + size < len(jobs):
            out["NextToken"] = str(start + size)
        return out

    def close(self) -> None:
        self.runner.close()


def _image(request: dict[str, Any]) -> str:
    return request["AlgorithmSpecification"]["TrainingImage"]


def install(cloud: LocalCloud) -> None:
    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    from localcloud.authz import _params, error_response

    jobs = TrainingJobs(cloud)
    cloud.training = jobs

    def answering(operation: str, handler: Any) -> Any:
        def method(self: Any) -> Any:
            try:
                return ActionResult(handler(_params(self, operation)))
            except SageMakerError as err:
                return error_response(self, err.code, err.status, err.message)

        return method

    SageMakerResponse.create_training_job = answering(
        "CreateTrainingJob", lambda p: {"TrainingJobArn": jobs.create(p).arn}
    )
    SageMakerResponse.describe_training_job = answering(
        "DescribeTrainingJob", lambda p: jobs.get(p.get("TrainingJobName", "")).describe()
    )
    SageMakerResponse.stop_training_job = answering(
        "StopTrainingJob", lambda p: jobs.stop(p.get("TrainingJobName", "")) or {}
    )
    SageMakerResponse.list_training_jobs = answering("ListTrainingJobs", jobs.list)

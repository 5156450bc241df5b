"""Validating a CreateTrainingJob request as SageMaker validates it, for what the local cloud runs (gap 23,
services/sagemaker_jobs.py): SageMakerError with SageMaker's code and wording, NotImplemented (501) for what SageMaker
runs and the local cloud does not; `s3_location` reads the S3 URIs SageMaker takes."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

DEFAULT_MAX_RUNTIME = 86400
MAX_RUNTIME_LIMIT = 28 * 86400
NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
CHANNEL = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
ROLE = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
S3_URI = re.compile(r"(https|s3)://([^/]+)/?(.*)")

SUPPORTED = {
    "TrainingJobName",
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "Tags",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "Environment",
}
SUPPORTED_PARTS = {
    "AlgorithmSpecification": {
        "TrainingImage",
        "TrainingInputMode",
        "MetricDefinitions",
        "EnableSageMakerMetricsTimeSeries",
    },
    "Channel": {"ChannelName", "DataSource", "ContentType", "CompressionType", "RecordWrapperType", "InputMode"},
    "S3DataSource": {"S3DataType", "S3Uri", "S3DataDistributionType"},
    "OutputDataConfig": {"S3OutputPath", "KmsKeyId", "CompressionType"},
    "ResourceConfig": {"InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId"},
    "StoppingCondition": {"MaxRuntimeInSeconds", "MaxWaitTimeInSeconds"},
}


class SageMakerError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def invalid(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def not_run_locally(what: str) -> SageMakerError:
    return SageMakerError("NotImplemented", f"The local cloud does not run training jobs with {what}", 501)


def s3_location(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`, `https://s3.<region>.amazonaws.com/bucket/key` (path style, as CDK writes
    an S3OutputPath) or `https://bucket.s3.<region>.amazonaws.com/key`."""
    match = S3_URI.fullmatch(uri or "")
    if match is None:
        raise invalid(f"Invalid S3 URI: {uri!r} does not match the pattern (https|s3)://([^/]+)/?(.*)")
    if match.group(1) == "s3":
        return match.group(2), match.group(3)
    parsed = urlparse(uri)
    host, path = parsed.netloc, parsed.path.lstrip("/")
    if host.startswith("s3.") or host.startswith("s3-") or host == "s3.amazonaws.com":
        bucket, _, key = path.partition("/")
        return bucket, key
    if ".s3." in host or ".s3-" in host:
        return host.split(".s3", 1)[0], path
    raise invalid(f"Invalid S3 URI: {uri!r} is not an Amazon S3 location")


# --- validation ------------------------------------------------------------------------------------------


def _unsupported(part: str, given: dict[str, Any]) -> None:
    extra = sorted(set(given) - SUPPORTED_PARTS[part])
    if extra:
        raise not_run_locally(f"{part} {', '.join(extra)}")


def validate(cloud: LocalCloud, params: dict[str, Any]) -> dict[str, Any]:
    """The request as the job runs it, SageMaker's defaults filled in; SageMakerError for what SageMaker refuses."""
    extra = sorted(set(params) - SUPPORTED)
    if extra:
        raise not_run_locally(", ".join(extra))
    request = json.loads(json.dumps(params, default=str))
    name = request.get("TrainingJobName", "")
    if not NAME.fullmatch(name):
        raise invalid(
            f"1 validation error detected: Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        )
    _role(cloud, request.get("RoleArn", ""), job_arn(cloud, name))
    algorithm = request.get("AlgorithmSpecification") or {}
    _unsupported("AlgorithmSpecification", algorithm)
    if not algorithm.get("TrainingImage"):
        raise invalid("AlgorithmSpecification.TrainingImage must be specified (the local cloud runs no AlgorithmName)")
    mode = algorithm.get("TrainingInputMode")
    if mode not in ("File", "Pipe", "FastFile"):
        raise invalid(f"Value '{mode}' at 'algorithmSpecification.trainingInputMode' failed to satisfy constraint")
    if mode != "File":
        raise not_run_locally(f"TrainingInputMode {mode} (File only)")
    request["InputDataConfig"] = _channels(request.get("InputDataConfig") or [], mode)
    output = request.get("OutputDataConfig") or {}
    _unsupported("OutputDataConfig", output)
    s3_location(output.get("S3OutputPath", ""))
    if output.get("CompressionType", "GZIP") != "GZIP":
        raise not_run_locally(f"OutputDataConfig.CompressionType {output['CompressionType']}")
    request["OutputDataConfig"] = {"KmsKeyId": "", **output, "CompressionType": "GZIP"}
    request["ResourceConfig"] = _resources(request.get("ResourceConfig") or {})
    request["StoppingCondition"] = _stopping(request)
    _hyperparameters(request.get("HyperParameters") or {})
    _tags(request.get("Tags") or [])
    environment = request.get("Environment") or {}
    if len(environment) > 100 or not all(isinstance(v, str) and len(v) <= 512 for v in environment.values()):
        raise invalid("Environment: at most 100 variables, each a string of at most 512 characters")
    return request


def job_arn(cloud: LocalCloud, name: str) -> str:
    return f"arn:aws:sagemaker:{cloud.region}:{cloud.account}:training-job/{name.lower()}"


def _role(cloud: LocalCloud, role_arn: str, job: str) -> None:
    from moto.iam.models import iam_backends

    from localcloud.iam_policy import Request, allowing_statement, denying_statement

    if not ROLE.fullmatch(role_arn):
        raise invalid(
            f"1 validation error detected: Value '{role_arn}' at 'roleArn' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {ROLE.pattern}"
        )
    refused = invalid(
        f"Could not assume role {role_arn}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role."
    )
    try:
        role = iam_backends[cloud.account]["global"].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - a role that does not exist cannot be assumed
        raise refused from None
    trust = json.loads(role.assume_role_policy_document) if role.assume_role_policy_document else {}
    assume = Request(  # SageMaker assumes it for this job (a trust policy may check which: confused deputy)
        principal_arn="",
        action="sts:AssumeRole",
        resource=role_arn,
        service="sagemaker.amazonaws.com",
        context={"aws:SourceAccount": cloud.account, "aws:SourceArn": job},
    )
    if denying_statement(trust, assume) is not None or allowing_statement(trust, assume) is None:
        raise refused


def _channels(channels: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    if len(channels) > 20:
        raise invalid("InputDataConfig: at most 20 channels")
    names: set[str] = set()
    out = []
    for channel in channels:
        _unsupported("Channel", channel)
        name = channel.get("ChannelName", "")
        if not CHANNEL.fullmatch(name):
            raise invalid(f"Value '{name}' at 'inputDataConfig.channelName' failed to satisfy constraint")
        if name in names:
            raise invalid(f"Channel names must be unique. Duplicate channel name: {name}")
        names.add(name)
        source = channel.get("DataSource") or {}
        if set(source) != {"S3DataSource"}:
            raise not_run_locally(f"DataSource {', '.join(sorted(source)) or '(none)'} (S3DataSource only)")
        s3 = dict(source["S3DataSource"])
        _unsupported("S3DataSource", s3)
        if s3.get("S3DataType") not in ("S3Prefix", "ManifestFile"):
            raise not_run_locally(f"S3DataType {s3.get('S3DataType')} (S3Prefix and ManifestFile only)")
        s3_location(s3.get("S3Uri", ""))
        s3.setdefault("S3DataDistributionType", "FullyReplicated")
        if s3["S3DataDistributionType"] not in ("FullyReplicated", "ShardedByS3Key"):
            raise invalid(f"Value '{s3['S3DataDistributionType']}' at 's3DataDistributionType' is not valid")
        if channel.get("InputMode", mode) != "File":
            raise not_run_locally(f"channel {name} InputMode {channel['InputMode']} (File only)")
        for key in ("CompressionType", "RecordWrapperType"):
            if channel.get(key, "None") != "None":
                raise not_run_locally(f"channel {name} {key} {channel[key]} (in File mode SageMaker takes None)")
        out.append(
            {**channel, "DataSource": {"S3DataSource": s3}, "CompressionType": "None", "RecordWrapperType": "None"}
        )
    return out


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    import botocore.session

    _unsupported("ResourceConfig", resources)
    model = botocore.session.get_session().get_service_model("sagemaker")
    types = model.shape_for("TrainingInstanceType").enum
    if resources.get("InstanceType") not in types:
        raise invalid(
            f"1 validation error detected: Value '{resources.get('InstanceType')}' at 'resourceConfig.instanceType' "
            f"failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(types[:8])}, ...]"
        )
    count = int(resources.get("InstanceCount", 1))
    if count < 1:
        raise invalid("ResourceConfig.InstanceCount must be at least 1")
    if count > 1:
        raise not_run_locally(f"InstanceCount {count} (one instance: the local cloud runs one job process)")
    if int(resources.get("VolumeSizeInGB", 0)) < 1:
        raise invalid("ResourceConfig.VolumeSizeInGB must be at least 1")
    return {**resources, "InstanceCount": count}


def _stopping(request: dict[str, Any]) -> dict[str, Any]:
    stopping = dict(request.get("StoppingCondition") or {})
    _unsupported("StoppingCondition", stopping)
    runtime = int(stopping.setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME))
    if not 1 <= runtime <= MAX_RUNTIME_LIMIT:
        raise invalid(f"MaxRuntimeInSeconds must be between 1 and {MAX_RUNTIME_LIMIT} seconds (28 days), got {runtime}")
    if request.get("EnableManagedSpotTraining"):
        wait = stopping.get("MaxWaitTimeInSeconds")
        if wait is None or int(wait) < runtime:
            raise invalid(
                "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to MaxRuntimeInSeconds"
            )
    elif "MaxWaitTimeInSeconds" in stopping:
        raise invalid("MaxWaitTimeInSeconds is only valid for managed spot training (EnableManagedSpotTraining)")
    return stopping


def _hyperparameters(hyperparameters: dict[str, Any]) -> None:
    if len(hyperparameters) > 100:
        raise invalid(
            f"1 validation error detected: Value '{{...}}' at 'hyperParameters' failed to satisfy constraint: "
            f"Member must have length less than or equal to 100 (got {len(hyperparameters)})"
        )
    for key, value in hyperparameters.items():
        if not isinstance(value, str):
            raise invalid(f"HyperParameters values must be strings: {key} is {type(value).__name__}")
        if len(key) > 256:
            raise invalid(
                f"1 validation error detected: Value '{key[:40]}...' at 'hyperParameters' failed to satisfy "
                "constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 256]"
            )
        if len(value) > 2500:
            raise invalid(
                f"1 validation error detected: Value '{value[:40]}...' at 'hyperParameters' failed to satisfy "
                "constraint: Map value must satisfy constraint: [Member must have length less than or equal to 2500]"
            )


def _tags(tags: list[dict[str, Any]]) -> None:
    if len(tags) > 50:
        raise invalid("1 validation error detected: Value at 'tags' failed to satisfy constraint: at most 50 tags")
    for tag in tags:
        key, value = tag.get("Key", ""), tag.get("Value", "")
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            raise invalid(f"Invalid tag {key!r}: keys of 1 to 128 characters not starting with aws:, values up to 256")

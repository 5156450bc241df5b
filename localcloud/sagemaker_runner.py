"""Running a SageMaker training job locally (gap 23: what SageMaker's platform does around the container).

For each job, a thread of the local cloud does what SageMaker does, with the job's role (its local key, so that
role's policies, the buckets' policies and the KMS key policies decide every request, gap 14):
- Downloading: each channel into `<state dir>/sagemaker/<job>/opt/ml/input/data/<channel>/`. S3Prefix lists the
  prefix (s3:ListBucket with s3:prefix) and downloads every object under it, each to its key relative to the
  prefix's last `/` (an S3Uri that is an object's key downloads that object, under its own name); ManifestFile
  reads the manifest (`[{"prefix": "s3://..."}, "relative/key", ...]`) and downloads exactly the objects it names
  (s3:GetObject each). A prefix the role may not list, or with no objects, fails the job with SageMaker's
  "ClientError: No S3 objects found under S3 URL ..."; an object it may not read, with "ClientError: Data download
  failed:..." and S3's error.
- the config files (`input/config/hyperparameters.json`, `inputdataconfig.json`, `resourceconfig.json` of host
  algo-1), then Training: the container, a process of its own (its own session and environment) running
  sagemaker_toolkit.py with the local venv's Python: TRAINING_JOB_NAME, TRAINING_JOB_ARN, AWS_REGION, the
  request's Environment, SAGEMAKER_BASE_DIR (the toolkit's relocation of /opt/ml) and, unless
  EnableNetworkIsolation, the role's credentials and the local endpoint (with it, no credentials, no endpoint:
  the job cannot call AWS itself, as in SageMaker). Its output goes to `<state dir>/logs/training-job-<job>.log`.
- MaxRuntimeInSeconds is wall time from the start of the download (a job's runtime is real work: never scaled).
  Past it, or on StopTrainingJob, the job is Stopping: its process group gets SIGTERM, then SIGKILL after
  STOP_GRACE_SECONDS (SageMaker's 120-second window to save the model), and it ends Stopped, with SecondaryStatus
  MaxRuntimeExceeded or Stopped.
- Uploading: `/opt/ml/model` as a gzip tar to `<S3OutputPath>/<job>/output/model.tar.gz` (and a non-empty
  `/opt/ml/output/data` as `output.tar.gz`) with the role, SSE-KMS with OutputDataConfig.KmsKeyId when given;
  after a success or a stop (what the job saved in time is its artifact), never after a failure. An upload the
  role may not make fails the job ("ClientError: Artifact upload failed:...").
- a non-zero exit fails the job with "AlgorithmError: <the first 1024 characters of /opt/ml/output/failure>,
  exit code: N" (AlgorithmError: , exit code: N when the file is empty or missing), as SageMaker words it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from localcloud.server import LocalCloud
    from localcloud.services.sagemaker_jobs import TrainingJob

TOOLKIT = Path(__file__).with_name("sagemaker_toolkit.py")
STOP_GRACE_SECONDS = 120.0


class JobFailed(Exception):
    """The job fails with this FailureReason."""


class Stopped(Exception):
    """StopTrainingJob arrived while the job was downloading."""


class JobRunner:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self._processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self, job: TrainingJob) -> None:
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"training-{job.name}").start()

    def close(self) -> None:
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            _signal_group(process, signal.SIGKILL)

    # --- one job ----------------------------------------------------------------------------------------

    def _run(self, job: TrainingJob) -> None:
        root = self._cloud.state_dir / "sagemaker" / job.name
        base = root / "opt" / "ml"
        try:
            if root.exists():
                shutil.rmtree(root)  # a state directory of an earlier local cloud
            for folder in ("input/config", "input/data", "model", "output/data", "code"):
                (base / folder).mkdir(parents=True, exist_ok=True)
            (root / "home").mkdir()
            with job.lock:
                job.training_start = datetime.now(UTC)
            deadline = time.monotonic() + job.max_runtime
            self._advance(job, "Downloading", "Downloading input data")
            s3 = self._cloud.client("s3", job.role_arn)
            for channel in job.request["InputDataConfig"]:
                self._download(job, s3, channel, base / "input" / "data" / channel["ChannelName"])
            self._write_config(job, base)
            self._advance(job, "Training", "Training image download completed. Training in progress.")
            outcome, code = self._train(job, root, base, deadline)
            if outcome == "exited" and code != 0:
                raise JobFailed(f"AlgorithmError: {_failure_text(base)}, exit code: {code}")
            self._advance(job, "Uploading", "Uploading generated training model", allow_stopping=True)
            self._upload(job, s3, base)
            if outcome == "exited":
                job.enter("Completed", "Training job completed", status="Completed")
            elif outcome == "max-runtime":
                reason = "The job stopped because it exceeded the maximum allowed runtime."
                job.enter("MaxRuntimeExceeded", reason, status="Stopped")
            else:
                job.enter("Stopped", "The training job has stopped.", status="Stopped")
        except Stopped:
            job.enter("Stopped", "The training job has stopped.", status="Stopped")
        except JobFailed as failed:
            job.enter("Failed", "Training job failed", status="Failed", failure_reason=str(failed))
        except Exception as err:  # noqa: BLE001 - an error of the local cloud itself: the job fails, saying so
            job.enter("Failed", "Training job failed", status="Failed", failure_reason=f"InternalServerError: {err!r}")
        self._cloud.record(
            {
                "kind": "training-job",
                "job": job.name,
                "status": job.status,
                "secondary": job.secondary,
                "reason": job.failure_reason,
                "model": job.model_artifacts,
            }
        )

    def _advance(self, job: TrainingJob, secondary: str, message: str, *, allow_stopping: bool = False) -> None:
        """The next phase, unless a StopTrainingJob came first (then the job stops: Stopped)."""
        if job.stop_requested.is_set():
            if not allow_stopping:
                raise Stopped()
            job.enter(secondary, message)
            return
        job.enter(secondary, message, status="InProgress")

    # --- channels -----------------------------------------------------------------------------------------

    def _download(self, job: TrainingJob, s3: Any, channel: dict[str, Any], target: Path) -> None:
        from localcloud.services.sagemaker_validation import s3_location

        target.mkdir(parents=True, exist_ok=True)
        source = channel["DataSource"]["S3DataSource"]
        bucket, key = s3_location(source["S3Uri"])
        if source["S3DataType"] == "ManifestFile":
            manifest = self._get(s3, bucket, key, None, job)
            objects = _manifest_objects(manifest, source["S3Uri"])
        else:
            objects = self._listed(job, s3, bucket, key, source["S3Uri"])
        for object_bucket, object_key, relative in objects:
            if job.stop_requested.is_set():
                raise Stopped()
            path = (target / relative).resolve()
            if not path.is_relative_to(target.resolve()) or not relative:
                raise JobFailed(f"ClientError: Data download failed:Invalid object key {object_key!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._get(s3, object_bucket, object_key, path, job)

    def _listed(self, job: TrainingJob, s3: Any, bucket: str, prefix: str, uri: str) -> list[tuple[str, str, str]]:
        found = []
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        except ClientError:
            found = []  # SageMaker reports a listing it may not make as it reports an empty one
        if not found:
            raise JobFailed(
                f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
                f"that the bucket exists in the selected region ({self._cloud.region}), that objects exist under that "
                f'S3 prefix, and that the role "{job.role_arn}" has "s3:ListBucket" permissions on bucket "{bucket}".'
            )
        directory = prefix[: prefix.rfind("/") + 1]
        return [(bucket, key, key[len(directory) :]) for key in found]

    @staticmethod
    def _get(s3: Any, bucket: str, key: str, path: Path | None, job: TrainingJob) -> bytes:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]  # GetObject: S3's error says why it refuses
            if path is None:
                return body.read()
            with path.open("wb") as out:
                for chunk in body.iter_chunks(1024 * 1024):
                    out.write(chunk)
            return b""
        except ClientError as err:
            error = err.response.get("Error", {})
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
            raise JobFailed(
                f"ClientError: Data download failed:Could not download s3://{bucket}/{key}: "
                f"{error.get('Code')} ({status}): {error.get('Message')}"
            ) from None

    # --- the container ------------------------------------------------------------------------------------

    def _write_config(self, job: TrainingJob, base: Path) -> None:
        config = base / "input" / "config"
        resources = job.request["ResourceConfig"]
        (config / "hyperparameters.json").write_text(json.dumps(job.request.get("HyperParameters") or {}))
        channels = {
            c["ChannelName"]: {
                **({"ContentType": c["ContentType"]} if c.get("ContentType") else {}),
                "TrainingInputMode": "File",
                "S3DistributionType": c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                "RecordWrapperType": "None",
            }
            for c in job.request["InputDataConfig"]
        }
        (config / "inputdataconfig.json").write_text(json.dumps(channels))
        group = {"instance_group_name": "homogeneousCluster", "instance_type": resources["InstanceType"]}
        (config / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": "algo-1",
                    "current_instance_type": resources["InstanceType"],
                    "current_group_name": "homogeneousCluster",
                    "hosts": ["algo-1"],
                    "instance_groups": [{**group, "hosts": ["algo-1"]}],
                    "network_interface_name": "eth0",
                }
            )
        )

    def _environment(self, job: TrainingJob, root: Path, base: Path) -> dict[str, str]:
        from localcloud.runtime import access_key_for
        from localcloud.server import SECRET

        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(root / "home"),
            "PYTHONUNBUFFERED": "1",
            "SAGEMAKER_BASE_DIR": str(base),
            "TRAINING_JOB_NAME": job.name,
            "TRAINING_JOB_ARN": job.arn,
            "AWS_REGION": self._cloud.region,
            "AWS_DEFAULT_REGION": self._cloud.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(root / "home" / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "home" / "no-aws-credentials"),
            **(job.request.get("Environment") or {}),
        }
        if not job.request.get("EnableNetworkIsolation"):
            env.update(
                AWS_ACCESS_KEY_ID=access_key_for(job.role_arn),
                AWS_SECRET_ACCESS_KEY=SECRET,
                AWS_ENDPOINT_URL=self._cloud.endpoint,
            )
        return env

    def _train(self, job: TrainingJob, root: Path, base: Path, deadline: float) -> tuple[str, int]:
        log_path = self._cloud.state_dir / "logs" / f"training-job-{job.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, str(TOOLKIT)],
                cwd=str(base),
                env=self._environment(job, root, base),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._lock:
            self._processes[job.name] = process
        try:
            while True:
                try:
                    return "exited", _exit_code(process.wait(timeout=0.1))
                except subprocess.TimeoutExpired:
                    pass
                if job.stop_requested.is_set():
                    self._stop(process)
                    return "stopped", _exit_code(process.returncode)
                if time.monotonic() >= deadline:
                    job.stop_requested.set()
                    job.enter("Stopping", "Stopping the training job: MaxRuntimeInSeconds reached", status="Stopping")
                    self._stop(process)
                    return "max-runtime", _exit_code(process.returncode)
        finally:
            _signal_group(process, signal.SIGKILL)  # the container ends with its main process: nothing outlives it
            with self._lock:
                self._processes.pop(job.name, None)

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=30)

    # --- artifacts ----------------------------------------------------------------------------------------

    def _upload(self, job: TrainingJob, s3: Any, base: Path) -> None:
        from localcloud.services.sagemaker_validation import s3_location

        output = job.request["OutputDataConfig"]
        bucket, prefix = s3_location(output["S3OutputPath"])
        folder = f"{prefix.rstrip('/')}/{job.name}/output" if prefix.strip("/") else f"{job.name}/output"
        encryption = {}
        if output["KmsKeyId"]:
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": output["KmsKeyId"]}
        uploads = [("model.tar.gz", base / "model", True)]
        if any((base / "output" / "data").iterdir()):
            uploads.append(("output.tar.gz", base / "output" / "data", False))
        for name, directory, is_model in uploads:
            key = f"{folder}/{name}"
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=_tar_gz(directory), **encryption)
            except ClientError as err:
                error = err.response.get("Error", {})
                raise JobFailed(
                    f"ClientError: Artifact upload failed:Could not upload s3://{bucket}/{key}: "
                    f"{error.get('Code')}: {error.get('Message')}"
                ) from None
            if is_model:
                with job.lock:
                    job.model_artifacts = f"s3://{bucket}/{key}"


def _manifest_objects(manifest: bytes, uri: str) -> list[tuple[str, str, str]]:
    from localcloud.services.sagemaker_validation import SageMakerError, s3_location

    try:
        entries = json.loads(manifest)
        prefix = entries[0]["prefix"]
        bucket, key_prefix = s3_location(prefix)
        relatives = [str(e) for e in entries[1:]]
    except (ValueError, KeyError, IndexError, TypeError, SageMakerError):
        raise JobFailed(f"ClientError: Data download failed:The manifest file {uri} is not a valid manifest") from None
    if not relatives:
        raise JobFailed(f"ClientError: Data download failed:The manifest file {uri} names no objects")
    return [(bucket, key_prefix + relative, relative) for relative in relatives]


def _failure_text(base: Path) -> str:
    path = base / "output" / "failure"
    return path.read_text(errors="replace")[:1024] if path.is_file() else ""


def _exit_code(returncode: int | None) -> int:
    """A container's exit code: 128 + N for a process ended by signal N."""
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # its own session: the toolkit and the program it runs


def _tar_gz(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()

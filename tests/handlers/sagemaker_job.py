"""A SageMaker training job as the handler tests need one (the local cloud's emulation is the real one): the prepare
step's state -> the `/opt/ml` layout of script mode under a temporary root (channels downloaded from S3 by key, the
hyperparameters file, the source asset extracted as the code directory), `mlvault_job.py` run in a subprocess as
`sagemaker_program`, and `/opt/ml/model` tarred to the output key; or the job's description as Step Functions'
`.sync` integration reports a failed job (the Cause of the training task's catch)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def lay_out(s3: Any, job: dict[str, Any], root: Path) -> Path:
    """The job's inputs under `root` as SageMaker copies them: S3Prefix channels (a prefix ending in "/") keep the
    path after the prefix, a channel naming one object gets its file name. Returns the code directory."""
    for channel, spec in job["channels"].items():
        bucket, key = _split(spec["s3_uri"])
        folder = root / "input" / "data" / channel
        folder.mkdir(parents=True)
        if key.endswith("/"):
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
            names = [(o["Key"], o["Key"][len(key) :]) for o in listed]
        else:
            names = [(key, key.rsplit("/", 1)[-1])]
        for object_key, relative in names:
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=object_key)["Body"].read())
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(job["hyperparameters"]))
    code = root / "code"
    code.mkdir()
    with tarfile.open(root / "input" / "data" / "code" / "sourcedir.tar.gz") as tar:
        tar.extractall(code, filter="data")
    (root / "model").mkdir()
    return code


def run_job(s3: Any, job: dict[str, Any], root: Path, *, before=None, timeout: float = 300) -> dict[str, Any]:
    """Run the job; `before(root)` may change its inputs first (a tampered channel file). Returns what
    DescribeTrainingJob would say (Completed, or Failed with the failure file as FailureReason)."""
    code = lay_out(s3, job, root)
    if before is not None:
        before(root)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLVAULT_"))},
        "MLVAULT_OPT_ML": str(root),
        "SM_MODEL_DIR": str(root / "model"),
        **{f"SM_CHANNEL_{c.upper()}": str(root / "input" / "data" / c) for c in job["channels"]},
    }
    program = job["hyperparameters"]["sagemaker_program"]
    done = subprocess.run(
        [sys.executable, str(code / program)], cwd=code, env=env, capture_output=True, text=True, timeout=timeout
    )
    description = {"TrainingJobName": job["name"], "SecondaryStatusTransitions": []}
    if done.returncode != 0:
        failure = root / "output" / "failure"
        reason = failure.read_text() if failure.exists() else f"AlgorithmError: {done.stderr[-500:]}"
        return {**description, "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": reason}
    bucket, key = _split(job["model_artifacts"])
    s3.put_object(Bucket=bucket, Key=key, Body=model_tar(root / "model"))
    return {
        **description,
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": job["model_artifacts"]},
        "stdout": done.stdout,
    }


def model_tar(folder: Path) -> bytes:
    """SageMaker's model.tar.gz of the model directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()


def catch_of(description: dict[str, Any]) -> dict[str, str]:
    """The training task's catch ({"Error", "Cause"}) for a job that did not complete."""
    return {"Error": "States.TaskFailed", "Cause": json.dumps(description)}

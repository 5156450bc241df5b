"""A sagemaker model's source: `sourcedir.tar.gz`, built at synth without Docker and published as a file asset.

The tar holds the team's `models/<name>/` and mlvault's in-job verifier `mlvault_job.py`, deterministic (the
library's mlvault.training.job_entry.source_asset, standard library only): the same files give the same bytes, so
the asset's content hash and its SHA-256 change exactly when the code does. The SHA-256 is the model's code digest:
it reaches the pipeline function in the signed bundle (Bundle.MODELS `code`) and the run's state (the prepare step),
and from there the run record, the provenance statement and the lineage.

The prepare step re-hashes the deployed asset against that digest and copies it into the run's content-addressed
channel prefix as `code/sourcedir.tar.gz` (the file name mlvault_job.py and `sagemaker_submit_directory` expect):
the training job reads its code and data from that one prefix, never from the assets bucket.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as assets
from constructs import Construct

from infra.settings import ROOT
from mlvault.training.job_entry.source_asset import SOURCE_FILE, write_source_asset

BUILD_DIR = ROOT / "build" / "model-sources"


def build_source(model_dir: Path, target_dir: Path) -> tuple[Path, str]:
    """Write `<target_dir>/<sha256>/sourcedir.tar.gz` from `model_dir` (a folder per content: synths may run side
    by side); its path and hex SHA-256."""
    buffer = io.BytesIO()
    write_source_asset(model_dir, buffer)
    data = buffer.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    folder = target_dir / sha256
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SOURCE_FILE
    if not target.is_file() or target.read_bytes() != data:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".sourcedir-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    return target, sha256


@dataclass
class ModelSource:
    asset: assets.Asset
    sha256: str

    @property
    def bucket(self) -> str:
        return self.asset.s3_bucket_name

    @property
    def key(self) -> str:
        return self.asset.s3_object_key

    def object_arn(self) -> str:
        return self.asset.bucket.arn_for_objects(self.key)

    def allow_reading(self, grantee: iam.IGrantable) -> None:
        """s3:GetObject of exactly this asset (the prepare step re-hashes and copies it)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.object_arn()])
        )


def model_source(scope: Construct, construct_id: str, *, name: str, source_dir: Path) -> ModelSource:
    """The source asset of model `name` from its directory (models/<dir>)."""
    path, sha256 = build_source(source_dir, BUILD_DIR / name)
    return ModelSource(asset=assets.Asset(scope, construct_id, path=str(path)), sha256=sha256)

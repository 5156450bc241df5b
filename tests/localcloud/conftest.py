"""The local cloud of the test app with a team's own training and function URLs (`byom`, gaps 23 to 25), shared by
test_training_jobs.py and test_function_urls.py."""

from __future__ import annotations

import io
import tarfile

import pytest

from localcloud import control
from tests.localcloud.app.stack import HERE, build_gaps_app, byom


@pytest.fixture(scope="session")
def byom_cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("byom")
    build_gaps_app(root / "cdk.out", extra=byom)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLVAULT_LOCAL_ROUTING_SEED", "mlvault")
        handle = control.up(cdk_out=root / "cdk.out", state_dir=root / "state", alarm_scale=60)
    try:
        source = io.BytesIO()
        with tarfile.open(fileobj=source, mode="w:gz") as archive:
            archive.add(HERE / "train_job" / "train.py", arcname="train.py")
        handle.client("s3").put_object(
            Bucket=handle.physical_id("gaps", "AWS::S3::Bucket", "TrainingData"),
            Key="code/sourcedir.tar.gz",
            Body=source.getvalue(),
        )
        yield handle
    finally:
        control.down(root / "state")

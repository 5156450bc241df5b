"""The e2e tests exercise the wiring `cdk deploy` ships: break it in the CDK code and the flow breaks."""

from __future__ import annotations

import time

import pytest
from aws_cdk import App

from infra.assembly import build
from localcloud import control
from tests.conftest import cdk_context
from tests.e2e.conftest import Ingest


def synth_broken(outdir, breakage) -> None:
    app = App(context=cdk_context(), outdir=str(outdir))
    built = build(app)
    breakage(built)
    app.synth()


def no_notification(built) -> None:
    built.storage.ingest_bucket.node.default_child.add_property_deletion_override("NotificationConfiguration")


def no_ledger_table_variable(built) -> None:
    fn = built.ingest.verify.function.node.default_child
    fn.add_property_deletion_override("Environment.Variables.MLVAULT_LEDGER_TABLE")


@pytest.mark.parametrize("breakage", [no_notification, no_ledger_table_variable])
def test_breaking_the_wiring_breaks_the_flow(tmp_path, breakage):
    synth_broken(tmp_path / "cdk.out", breakage)
    handle = control.up(cdk_out=tmp_path / "cdk.out", state_dir=tmp_path / "state")
    try:
        ingest = Ingest(handle)
        key = "producers/acme/iris/broken.csv"
        ingest.upload(key)
        time.sleep(4)  # the healthy wiring records an upload in about a second
        assert ingest.records(key) == []
        if breakage is no_notification:
            assert handle.events("s3-notification") == []
        else:
            failed = [e for e in handle.events("sqs-batch") if e["failed"]]
            assert failed  # the upload's message failed (S3's test event alone succeeds)
            log = next((handle.state_dir / "logs").glob("*Verify*.log")).read_text()
            assert "MLVAULT_LEDGER_TABLE is not set" in log
    finally:
        control.down(tmp_path / "state")

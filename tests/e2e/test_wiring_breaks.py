"""The e2e tests exercise the wiring `cdk deploy` ships: break it in the CDK code and the flow breaks."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App

from infra.assembly import build
from localcloud import control
from tests.conftest import cdk_context
from tests.e2e.conftest import Ingest, eventually


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


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """One app synthesized with both breakages, on a local cloud of its own."""
    root = tmp_path_factory.mktemp("broken")
    synth_broken(root / "cdk.out", lambda built: (no_notification(built), no_ledger_table_variable(built)))
    handle = control.up(cdk_out=root / "cdk.out", state_dir=root / "state")
    try:
        yield handle
    finally:
        control.down(root / "state")


def test_without_the_buckets_notification_an_upload_reaches_nothing(broken):
    ingest = Ingest(broken)
    key = "producers/acme/iris/broken.csv"
    ingest.upload(key)  # the local cloud sends S3's notifications before the PUT answers
    assert broken.events("s3-notification") == []  # nothing was sent: nothing can follow
    assert ingest.records(key) == []


def test_without_the_ledger_variable_the_verifier_fails_every_message(broken):
    ingest = Ingest(broken)
    key = "producers/acme/iris/broken-ledger.csv"
    version = ingest.signed_upload(key)
    # what the (removed) notification would have sent, sent by hand: it reaches the verifier, which fails it
    message = {"Records": [{"s3": {"bucket": {"name": ingest.bucket}, "object": {"key": key, "versionId": version}}}]}
    ingest.sqs.send_message(QueueUrl=ingest.queue_url, MessageBody=json.dumps(message))
    eventually(lambda: [e for e in broken.events("sqs-batch") if e["failed"]], timeout=30)
    assert ingest.records(key) == []
    log = next((broken.state_dir / "logs").glob("*Verify*.log")).read_text()
    assert "MLVAULT_LEDGER_TABLE is not set" in log

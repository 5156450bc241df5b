"""Nothing is lost: many uploads, with lost notifications, deleted and overwritten versions, duplicates and
bad signatures, end with every ingest version accounted for exactly once, and no lake version too many."""

from __future__ import annotations

import json
import time

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import eventually


def test_every_version_ends_with_exactly_one_terminal_record(ingest, cloud):
    lam = cloud.client("lambda")
    verify_fn = cloud.physical_id("-ingest", "AWS::Lambda::Function", "VerifyFunction")
    reconcile_fn = cloud.physical_id("-ingest", "AWS::Lambda::Function", "ReconcileFunction")
    (mapping,) = lam.list_event_source_mappings(FunctionName=verify_fn)["EventSourceMappings"]
    prefix = "producers/acme/iris/lost-"

    # Phase 1: notifications are lost (the mapping is off and the queue purged before it comes back).
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    lost = [ingest.signed_upload(f"{prefix}{i}.csv", iris_csv(10, i)) for i in range(10)]
    lost += [ingest.upload(f"{prefix}unsigned-{i}.csv", b"x\n") for i in range(3)]
    ingest.sqs.purge_queue(QueueUrl=ingest.queue_url)
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)

    # Phase 2: normal traffic with faults: deleted before read, overwritten, duplicated, tampered.
    live = "producers/acme/iris/live-"
    for i in range(10):
        ingest.signed_upload(f"{live}{i}.csv", iris_csv(10, 100 + i))
    deleted = ingest.signed_upload(f"{live}deleted.csv", iris_csv(10, 200))
    ingest.s3.delete_object(Bucket=ingest.bucket, Key=f"{live}deleted.csv", VersionId=deleted)
    ingest.signed_upload(f"{live}twice.csv", iris_csv(10, 201))
    ingest.signed_upload(f"{live}twice.csv", iris_csv(10, 202))
    duplicate = ingest.signed_upload(f"{live}dup.csv", iris_csv(10, 203))
    message = {
        "Records": [
            {"s3": {"bucket": {"name": ingest.bucket}, "object": {"key": f"{live}dup.csv", "versionId": duplicate}}}
        ]
    }
    for _ in range(3):
        ingest.sqs.send_message(QueueUrl=ingest.queue_url, MessageBody=json.dumps(message))

    # The reconciler, made impatient by configuration, re-drives what no notification announced.
    config = lam.get_function_configuration(FunctionName=reconcile_fn)
    env = {**config["Environment"]["Variables"], "MLVAULT_RECONCILE_DEADLINE_SECONDS": "3"}
    lam.update_function_configuration(FunctionName=reconcile_fn, Environment={"Variables": env})
    time.sleep(3.5)  # the lost uploads are now past the deadline

    def reconcile():
        return json.loads(lam.invoke(FunctionName=reconcile_fn)["Payload"].read())

    first = reconcile()
    assert first["redriven"] == len(lost)  # exactly the versions whose notification was lost
    final = eventually(lambda: (out := reconcile())["unaccounted"] == 0 and out, timeout=60, interval=1)
    assert final["quarantined"] == 0

    versions = []
    for page in ingest.s3.get_paginator("list_object_versions").paginate(Bucket=ingest.bucket, Prefix="producers/"):
        versions += page.get("Versions", [])
    accepted_lake_versions = set()
    for version in versions:
        records = [r for r in ingest.records(version["Key"]) if r["version_id"]["S"] == version["VersionId"]]
        assert len(records) == 1, version
        assert records[0]["status"]["S"] in ("ACCEPTED", "REJECTED", "HELD"), records[0]  # terminal, all of them
        if version["Key"].startswith((prefix, live)):  # this test's uploads: clean or broken, never suspicious
            assert records[0]["status"]["S"] in ("ACCEPTED", "REJECTED"), records[0]
        if records[0]["status"]["S"] == "ACCEPTED":
            accepted_lake_versions.add((records[0]["lake_key"]["S"], records[0]["lake_version"]["S"]))
    for i, version in enumerate(lost[:10]):
        record = ingest.verdict(f"{prefix}{i}.csv", version)
        assert record["status"] == "ACCEPTED", (record.get("reason"), record.get("detail"))
    assert {ingest.verdict(f"{prefix}unsigned-{i}.csv", lost[10 + i])["reason"] for i in range(3)} == {
        "MISSING_SIGNATURE"
    }
    assert ingest.verdict(f"{live}deleted.csv", deleted)["reason"] == "SOURCE_MISSING"
    assert len(ingest.records(f"{live}dup.csv")) == 1
    lake_versions = ingest.s3.list_object_versions(Bucket=ingest.lake, Prefix="datasets/")["Versions"]
    lake_by_key = {}
    for v in lake_versions:
        lake_by_key.setdefault(v["Key"], []).append(v["VersionId"])
    assert all(len(ids) == 1 for ids in lake_by_key.values())  # at most one lake version per content
    assert accepted_lake_versions <= {(k, ids[0]) for k, ids in lake_by_key.items()}

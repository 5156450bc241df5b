"""A run's manifest within the model's max_rows (mlvault.training.manifest.build_bounded_manifest), through the
verify and pipeline handlers on moto: an oversized accepted batch is left out and the run trains on the rest, one
flooding producer does not keep another out, and nothing that fits fails the run with NO_TRAINABLE_DATA naming the
cap. What was left out is in the run record and the model record (`manifest.left_out`), never in the lineage.
Then the rule itself on ledger records written directly (rows as the contract check recorded them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlvault.canonical import versioned_uri
from mlvault.errors import PipelineFailed
from mlvault.ledger import Ledger, LedgerRecord
from mlvault.registry.records import SCHEMA_FILE, ModelRegistry
from mlvault.training.manifest import LEFT_OUT_LISTED, build_bounded_manifest, build_manifest
from mlvault_tools import testkeys
from mlvault_tools.samples import iris_csv
from tests.handlers.conftest import s3_body, sqs_event
from tests.handlers.models_world import IRIS_MODEL, World, train_and_sign
from tests.handlers.models_world import world as world  # the fixture
from tests.handlers.test_models_pipeline import INGEST, LAKE, TABLE
from tests.handlers.test_models_pipeline import env as env  # the fixture
from tests.handlers.test_pipeline_steps import pipeline_env as pipeline_env  # the fixture

CAP = 1500  # iris's max_rows in these worlds: the stage's 200,000 scaled to batches of hundreds of rows


def cap_rows(w: World, max_rows: int = CAP) -> None:
    """The bundled models document with iris's training capped at `max_rows`."""
    document = {"iris": {**IRIS_MODEL, "training": {**IRIS_MODEL["training"], "max_rows": max_rows}}}
    (w.task_root / "trust" / "models.json").write_text(json.dumps(document))


def upload(w: World, name: str, rows: int, seed: int, producer: str = "acme") -> LedgerRecord:
    """An iris batch of `rows` rows signed by `producer`'s P-256 key, through the verify handler: ACCEPTED."""
    key = f"producers/{producer}/iris/{name}.csv"
    body = iris_csv(rows, seed)
    metadata = testkeys.signed_metadata(testkeys.claim_for(key, body), f"{producer}-p256")
    version = w.env["s3"].put_object(Bucket=w.env["ingest"], Key=key, Body=body, Metadata=metadata)["VersionId"]
    assert w.invoke("verify", sqs_event(s3_body(w.env["ingest"], key, version, len(body)))) == {"batchItemFailures": []}
    record = Ledger(w.env["ddb"], "ledger").get(w.env["ingest"], key, version)
    assert (record.status, record.attributes["rows"]) == ("ACCEPTED", str(rows)), record
    return record


def lake_uri(record: LedgerRecord) -> str:
    a = record.attributes
    return versioned_uri(a["lake_bucket"], a["lake_key"], a["lake_version"])


def listed(record: LedgerRecord) -> dict[str, Any]:
    """A left-out file as the run record lists it."""
    a = record.attributes
    return {
        "lake_uri": lake_uri(record),
        "producer": a["producer"],
        "rows": int(a["rows"]),
        "accepted_at": a["verdict_at"],
    }


def registry(w: World) -> ModelRegistry:
    return ModelRegistry(w.env["ddb"], "registry")


def lineage(w: World, model_id: str) -> list[str]:
    return sorted(e["lake_uri"] for e in registry(w).model(model_id)["record"]["lineage"])


def test_an_oversized_accepted_batch_is_left_out_and_the_run_trains_on_the_rest(world):
    cap_rows(world)
    old = upload(world, "old", 400, 70)
    flood = upload(world, "flood", 2500, 73)  # alone over max_rows: before, every run failed TOO_MANY_ROWS
    mid = upload(world, "mid", 1000, 74)  # fits alone, not after the newest: left out, and the older one still fits
    new = upload(world, "new", 600, 71)
    state = train_and_sign(world, "run-capped")
    left_out = {
        "reason": "over max_rows",
        "max_rows": CAP,
        "count": 2,
        "rows": 3500,
        "producers": {"acme": {"count": 2, "rows": 3500}},
        "files": [listed(mid), listed(flood)],  # newest first
    }
    assert state["manifest"]["left_out"] == left_out
    assert (state["manifest"]["entries"], state["manifest"]["rows"]) == (2, 1000)
    run = registry(world).run("run-capped")
    assert run["status"] == "SIGNED"
    assert run["manifest"]["left_out"] == left_out
    assert run["rows"]["train"] + run["rows"]["heldout"] == 1000
    model = registry(world).model(state["model_id"])
    assert model["record"]["manifest"] == state["manifest"]  # the schema-validated, signed record says it too
    assert lineage(world, state["model_id"]) == sorted([lake_uri(new), lake_uri(old)])  # only what was used
    # the files left out stay ACCEPTED: a later run with room for them takes them
    ledger = Ledger(world.env["ddb"], "ledger")
    assert {ledger.get(r.bucket, r.key, r.version_id).status for r in (flood, mid)} == {"ACCEPTED"}


def test_the_reported_batch_of_950k_recorded_rows_does_not_stop_iris_at_its_200k_cap(world):
    cap_rows(world, 200_000)  # cdk.json's iris
    first, second = upload(world, "b0", 600, 70), upload(world, "b1", 600, 71)
    big = upload(world, "big", 300, 72)
    world.env["ddb"].update_item(  # the count the contract check recorded for the 950,000-row batch
        TableName="ledger",
        Key={"pk": {"S": f"OBJ#{big.bucket}/{big.key}"}, "sk": {"S": f"V#{big.version_id}"}},
        UpdateExpression="SET #rows = :rows",
        ExpressionAttributeNames={"#rows": "rows"},
        ExpressionAttributeValues={":rows": {"S": "950000"}},
    )
    state = train_and_sign(world, "run-iris")  # the batch is never read (reading it would be ROW_COUNT_MISMATCH)
    assert state["manifest"]["left_out"] == {
        "reason": "over max_rows",
        "max_rows": 200_000,
        "count": 1,
        "rows": 950_000,
        "producers": {"acme": {"count": 1, "rows": 950_000}},
        "files": [{**listed(big), "rows": 950_000}],
    }
    assert (state["manifest"]["entries"], state["manifest"]["rows"]) == (2, 1200)
    assert lineage(world, state["model_id"]) == sorted([lake_uri(first), lake_uri(second)])


def test_a_flooding_producer_does_not_crowd_out_another(world):
    cap_rows(world)
    other = upload(world, "d1", 500, 80, producer="demo-producer")  # the oldest file
    a1, a2 = upload(world, "a1", 600, 81), upload(world, "a2", 600, 82)
    a3 = upload(world, "a3", 1100, 83)  # the newest: fits alone, and would leave no room for demo-producer
    # newest first alone would take a3 (room left: 400) and nothing else; the first round offers each producer's
    # newest file, the smaller first: d1 (room left: 1000), then a3 does not fit; the second round a2 (400 left)
    state = train_and_sign(world, "run-fair")
    assert state["manifest"]["left_out"] == {
        "reason": "over max_rows",
        "max_rows": CAP,
        "count": 2,
        "rows": 1700,
        "producers": {"acme": {"count": 2, "rows": 1700}},
        "files": [listed(a3), listed(a1)],
    }
    assert (state["manifest"]["entries"], state["manifest"]["rows"]) == (2, 1100)
    record = registry(world).model(state["model_id"])["record"]
    assert sorted((e["producer"], e["lake_uri"]) for e in record["lineage"]) == [
        ("acme", lake_uri(a2)),
        ("demo-producer", lake_uri(other)),
    ]


def test_when_every_file_alone_is_over_max_rows_the_run_fails_naming_the_cap(world):
    cap_rows(world)
    acme = upload(world, "big", 1600, 90)
    demo = upload(world, "bigger", 2000, 91, producer="demo-producer")
    detail = (
        f"dataset 'iris': each of its 2 accepted file(s) has more rows than max_rows {CAP} (the smallest has 1600): "
        "nothing to train on (the run's manifest.left_out lists them; raise training.max_rows or train with the "
        "sagemaker engine)"
    )
    with pytest.raises(PipelineFailed) as err:
        world.invoke("pipeline", {"step": "train", "state": {"run_id": "run-none", "dataset": "iris"}})
    assert (err.value.reason, str(err.value).endswith(f": {detail}")) == ("NO_TRAINABLE_DATA", True)
    run = registry(world).run("run-none")
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"], run["outcome"]["detail"]) == (
        "FAILED",
        "train",
        "NO_TRAINABLE_DATA",
        detail,
    )
    assert run["manifest"] == {
        "left_out": {
            "reason": "over max_rows",
            "max_rows": CAP,
            "count": 2,
            "rows": 3600,
            "producers": {"acme": {"count": 1, "rows": 1600}, "demo-producer": {"count": 1, "rows": 2000}},
            "files": [listed(demo), listed(acme)],
        }
    }
    assert "Contents" not in world.env["s3"].list_objects_v2(Bucket="models", Prefix="manifests/")
    # the state machine's catch ends the run with the account it recorded
    failure = {"Error": "PipelineFailed", "Cause": json.dumps({"errorMessage": str(err.value)})}
    event = {"step": "fail", "state": {"run_id": "run-none", "dataset": "iris"}, "failed_step": "train"}
    ended = world.invoke("pipeline", {**event, "error": failure})
    assert (ended["status"], ended["reason"], ended["detail"]) == ("FAILED", "NO_TRAINABLE_DATA", detail)


# --- the rule, on ledger records written directly ------------------------------------------------------------


def accepted(env, name: str, rows: int, at: str, producer: str = "lab-01") -> dict[str, str]:
    """An ACCEPTED ledger record of `rows` rows, accepted at second `at` of the day (no lake object: the rule
    reads none)."""
    key = f"{producer}/iris/{name}"
    attributes = {
        "lake_bucket": LAKE,
        "lake_key": f"datasets/iris/{producer}/{name}",
        "lake_version": f"lv-{name}",
        "sha256": "0" * 64,
        "producer": producer,
        "key_id": f"{producer}-k1",
        "dataset": "iris",
        "contract_version": "1",
        "rows": str(rows),
        "verdict_at": f"2026-11-25T12:00:{at}.000+00:00",
    }
    assert env["ledger"].record_verdict(
        bucket=INGEST, key=key, version_id=f"iv-{name}", status="ACCEPTED", size=1, attributes=attributes
    )
    return attributes


def names(entries) -> list[str]:
    return sorted(e.lake_key.rsplit("/", 1)[1] for e in entries)


def test_within_max_rows_the_bounded_manifest_is_the_whole_one(env):
    for n in range(3):
        accepted(env, f"f{n}", 500, f"0{n}")
    ledger = Ledger(env["ddb"], TABLE)
    bounded = build_bounded_manifest(ledger, "iris", max_rows=1500)
    assert bounded.manifest == build_manifest(ledger, "iris")
    assert (bounded.left_out, bounded.left_out_json()) == ((), None)


def test_the_rule_takes_rounds_across_producers_and_an_older_file_may_still_fit(env):
    for n, at in enumerate(("09", "08", "07", "06"), start=1):  # lab-a floods with the newest files
        accepted(env, f"a{n}", 500, at, "lab-a")
    accepted(env, "a-old", 200, "01", "lab-a")
    accepted(env, "b-new", 400, "05", "lab-b")
    accepted(env, "b-huge", 5000, "04", "lab-b")  # alone over max_rows: out before the rounds
    accepted(env, "b-old", 600, "02", "lab-b")
    accepted(env, "c-only", 400, "03", "lab-c")
    ledger = Ledger(env["ddb"], TABLE)
    bounded = build_bounded_manifest(ledger, "iris", max_rows=2000)
    # round 0: b-new 400 (newer than c-only), c-only 400, a1 500 -> 1300; round 1: a2 500 -> 1800, b-old 600 does
    # not fit; rounds 2 and 3: a3 and a4 do not fit; round 4: a-old 200 -> 2000 (newest first alone: a1 to a4)
    assert names(bounded.manifest.entries) == ["a-old", "a1", "a2", "b-new", "c-only"]
    assert bounded.manifest.rows == 2000
    assert [(f.entry.lake_key.rsplit("/", 1)[1], f.entry.rows) for f in bounded.left_out] == [
        ("a3", 500),
        ("a4", 500),
        ("b-huge", 5000),
        ("b-old", 600),
    ]
    assert bounded.left_out_json()["producers"] == {
        "lab-a": {"count": 2, "rows": 1000},
        "lab-b": {"count": 2, "rows": 5600},
    }
    # the same ledger, read a record per page, gives the same bytes
    again = build_bounded_manifest(ledger, "iris", max_rows=2000, page_size=1)
    assert (again.manifest.to_bytes(), again.left_out_json()) == (bounded.manifest.to_bytes(), bounded.left_out_json())


def test_within_a_round_the_smaller_file_goes_first(env):
    accepted(env, "a-big", 900, "09", "lab-a")  # fits alone, and would leave no room for lab-b's newest
    accepted(env, "a-small", 300, "04", "lab-a")
    accepted(env, "b-small", 200, "05", "lab-b")
    bounded = build_bounded_manifest(Ledger(env["ddb"], TABLE), "iris", max_rows=1000)
    assert names(bounded.manifest.entries) == ["a-small", "b-small"]
    assert [f.entry.lake_key.rsplit("/", 1)[1] for f in bounded.left_out] == ["a-big"]


def test_the_left_out_list_is_bounded_newest_first_and_matches_the_record_schema(env):
    for n in range(25):
        accepted(env, f"big-{n:02d}", 3000, f"{n:02d}", f"lab-{n % 2}")
    accepted(env, "small", 100, "30")
    bounded = build_bounded_manifest(Ledger(env["ddb"], TABLE), "iris", max_rows=2000)
    assert names(bounded.manifest.entries) == ["small"]
    said = bounded.left_out_json()
    assert (said["count"], said["rows"], len(said["files"])) == (25, 75_000, LEFT_OUT_LISTED)
    assert [f["lake_uri"].split("?")[0].rsplit("/", 1)[1] for f in said["files"]] == [
        f"big-{n:02d}" for n in range(24, 4, -1)
    ]
    assert said["producers"] == {"lab-0": {"count": 13, "rows": 39_000}, "lab-1": {"count": 12, "rows": 36_000}}
    # the model record's schema bounds the list as the rule does, and names exactly these fields
    schema = json.loads(SCHEMA_FILE.read_text())["properties"]["manifest"]["properties"]["left_out"]
    files = schema["properties"]["files"]
    assert (files["maxItems"], set(files["items"]["required"])) == (LEFT_OUT_LISTED, set(said["files"][0]))
    assert set(schema["required"]) == set(said)

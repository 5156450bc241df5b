"""Manifest -> train -> evaluate on moto: the ledger table shaped like the storage stack's (pk/sk strings), a
versioned lake bucket and an artifacts bucket. Ledger records are written through mlvault.ledger.Ledger, as the
verifier and the reviewer write them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import boto3
import pytest

from mlvault.contracts.schema import load_contract
from mlvault.ledger import Ledger
from mlvault.model_package import unpack
from mlvault.training.data import DigestMismatch
from mlvault.training.evaluation import evaluate_package, heldout_from_manifest
from mlvault.training.gates import Gates, inputs_accepted
from mlvault.training.manifest import (
    IngestRef,
    ManifestError,
    build_manifest,
    load_manifest,
    manifest_key,
    parse_manifest,
    store_manifest,
)
from mlvault.training.onnx_scoring import OnnxScorer
from mlvault.training.params import TrainingParams
from mlvault.training.trainer import LambdaTrainer
from mlvault_tools import samples
from tests.handlers.conftest import key_value_table, versioned_buckets

ROOT = Path(__file__).resolve().parents[2]
IRIS = load_contract(ROOT / "contracts", "iris")
INGEST, LAKE, ARTIFACTS, TABLE = "mlvault-test-ingest", "mlvault-test-lake", "mlvault-test-artifacts", "ledger"


@pytest.fixture
def env(aws):
    s3 = boto3.client("s3")
    ddb = boto3.client("dynamodb")
    versioned_buckets(s3, LAKE, ARTIFACTS)
    key_value_table(ddb, TABLE)
    return {"s3": s3, "ddb": ddb, "ledger": Ledger(ddb, TABLE)}


def ingest(
    env,
    name: str,
    data: bytes,
    status: str,
    *,
    rows: int,
    dataset: str = "iris",
    contract_version: str = "1",
    producer: str = "lab-01",
    ingest_version: str | None = None,
) -> dict[str, str]:
    """An ingest version with its terminal ledger record; an ACCEPTED one also gets its lake copy. HELD and
    REJECTED records carry lake-like attributes too: only the status may keep them out."""
    digest = hashlib.sha256(data).hexdigest()
    key = f"{producer}/{dataset}/{name}"
    version = ingest_version or f"iv-{name}"
    lake_key = f"datasets/{dataset}/{producer}/sha256={digest}/{name}"
    lake_version = env["s3"].put_object(Bucket=LAKE, Key=lake_key, Body=data)["VersionId"]
    attributes = {
        "lake_bucket": LAKE,
        "lake_key": lake_key,
        "lake_version": lake_version,
        "sha256": digest,
        "producer": producer,
        "key_id": f"{producer}-k1",
        "dataset": dataset,
        "contract_version": contract_version,
        "rows": str(rows),
    }
    ledger = env["ledger"]
    ledger.record_received(bucket=INGEST, key=key, version_id=version, size=len(data), attributes={})
    if status != "RECEIVED":
        assert ledger.record_verdict(
            bucket=INGEST, key=key, version_id=version, status=status, size=len(data), attributes=attributes
        )
    return {"key": key, "version": version, **attributes}


def populate(env) -> dict[str, dict[str, str]]:
    made = {
        "b": ingest(env, "b.csv", samples.iris_csv(400, 2), "ACCEPTED", rows=400),
        "a": ingest(env, "a.csv", samples.iris_csv(400, 1), "ACCEPTED", rows=400),
        "held": ingest(env, "held.csv", samples.iris_csv(100, 3, flip=0.5), "HELD", rows=100),
        "rejected": ingest(env, "rejected.csv", samples.iris_csv(100, 4, skew_site="fr-01"), "REJECTED", rows=100),
        "received": ingest(env, "received.csv", samples.iris_csv(100, 5), "RECEIVED", rows=100),
        "other": ingest(env, "other.csv", samples.iris_csv(100, 6), "ACCEPTED", rows=100, dataset="wine"),
    }
    env["ledger"].claim_nonce("lab-01", "n-1", "owner")  # items of other kinds share the table
    return made


def test_the_manifest_holds_only_accepted_versions_of_the_dataset_sorted(env):
    made = populate(env)
    manifest = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    assert [e.lake_key for e in manifest.entries] == sorted([made["a"]["lake_key"], made["b"]["lake_key"]])
    assert manifest.rows == 800
    (first,) = [e for e in manifest.entries if e.lake_key == made["a"]["lake_key"]]
    assert (first.lake_bucket, first.lake_version, first.sha256, first.size) == (
        LAKE,
        made["a"]["lake_version"],
        made["a"]["sha256"],
        len(samples.iris_csv(400, 1)),
    )
    assert (first.producer, first.key_id, first.contract_version, first.rows) == ("lab-01", "lab-01-k1", "1", 400)
    assert first.ingest == (IngestRef(INGEST, made["a"]["key"], made["a"]["version"]),)
    # the same records give the same bytes, page by page too
    assert build_manifest(Ledger(env["ddb"], TABLE), "iris", page_size=1).to_bytes() == manifest.to_bytes()
    data = manifest.to_bytes()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert manifest.digest == hashlib.sha256(data).hexdigest()


def test_a_released_version_joins_the_next_manifest(env):
    populate(env)
    before = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    held = next(
        r for r in env["ledger"].versions(INGEST, "lab-01/iris/held.csv") if r.status == "HELD"
    )  # reviewed: released
    assert env["ledger"].review(
        bucket=INGEST,
        key=held.key,
        version_id=held.version_id,
        status="ACCEPTED",
        reviewed_by="alice",
        reason="checked by hand",
    )
    after = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    assert len(after.entries) == len(before.entries) + 1
    assert after.digest != before.digest


def test_identical_bytes_accepted_twice_are_one_entry(env):
    data = samples.iris_csv(200, 1)
    ingest(env, "same.csv", data, "ACCEPTED", rows=200, ingest_version="iv-1")
    # the verifier reuses the content-addressed lake version of a second upload of the same bytes
    first = env["ledger"].get(INGEST, "lab-01/iris/same.csv", "iv-1").attributes
    env["ledger"].record_received(bucket=INGEST, key="lab-01/iris/same.csv", version_id="iv-2", size=1, attributes={})
    env["ledger"].record_verdict(
        bucket=INGEST,
        key="lab-01/iris/same.csv",
        version_id="iv-2",
        status="ACCEPTED",
        size=len(data),
        attributes={k: v for k, v in first.items() if k not in ("size", "verdict_at")},
    )
    (entry,) = build_manifest(Ledger(env["ddb"], TABLE), "iris").entries
    assert [r.version_id for r in entry.ingest] == ["iv-1", "iv-2"]


def test_no_accepted_data_is_an_error(env):
    ingest(env, "held.csv", samples.iris_csv(50, 3), "HELD", rows=50)
    with pytest.raises(ManifestError) as err:
        build_manifest(Ledger(env["ddb"], TABLE), "iris")
    assert err.value.reason == "NO_ACCEPTED_DATA"
    assert err.value.detail == (
        "dataset 'iris' has no ACCEPTED ledger records: nothing to train on "
        "(HELD, REJECTED and RECEIVED versions never enter a manifest)"
    )


def test_one_contract_version_per_manifest(env):
    ingest(env, "v1.csv", samples.iris_csv(50, 1), "ACCEPTED", rows=50)
    ingest(env, "v2.csv", samples.iris_csv(50, 2), "ACCEPTED", rows=50, contract_version="2")
    with pytest.raises(ManifestError, match=r"contract versions \['1', '2'\]: choose one"):
        build_manifest(Ledger(env["ddb"], TABLE), "iris")
    (entry,) = build_manifest(Ledger(env["ddb"], TABLE), "iris", contract_version="2").entries
    assert entry.lake_key.endswith("/v2.csv")


def test_an_accepted_record_that_pins_no_lake_object_fails_closed(env):
    env["ledger"].record_verdict(
        bucket=INGEST,
        key="lab-01/iris/odd.csv",
        version_id="iv-odd",
        status="ACCEPTED",
        size=10,
        attributes={"dataset": "iris", "contract_version": "1", "sha256": "a" * 64},
    )
    with pytest.raises(ManifestError, match=r"lab-01/iris/odd.csv\?versionId=iv-odd lacks \['lake_bucket'"):
        build_manifest(Ledger(env["ddb"], TABLE), "iris")


def test_the_manifest_is_stored_content_addressed_and_verified_on_load(env):
    populate(env)
    s3 = env["s3"]
    manifest = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    version = store_manifest(s3, ARTIFACTS, manifest)
    key = manifest_key("iris", manifest.digest)
    assert key == f"manifests/iris/sha256={manifest.digest}.json"
    head = s3.head_object(Bucket=ARTIFACTS, Key=key, VersionId=version, ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == manifest.digest
    assert store_manifest(s3, ARTIFACTS, manifest) == version  # a retry writes nothing new
    assert load_manifest(s3, ARTIFACTS, "iris", manifest.digest, version_id=version) == manifest
    # someone overwrites the key with other bytes: the latest version no longer matches its address
    s3.put_object(Bucket=ARTIFACTS, Key=key, Body=manifest.to_bytes().replace(b'"rows":400', b'"rows":40'))
    with pytest.raises(ManifestError, match=f"s3://{ARTIFACTS}/{key}: expected sha256 {manifest.digest}, got "):
        load_manifest(s3, ARTIFACTS, "iris", manifest.digest)
    assert load_manifest(s3, ARTIFACTS, "iris", manifest.digest, version_id=version) == manifest
    pretty = json.dumps(manifest.to_json(), indent=1).encode()
    with pytest.raises(ManifestError, match="not in canonical form"):
        parse_manifest(pretty, digest=hashlib.sha256(pretty).hexdigest())


def test_training_reads_the_pinned_version_not_the_latest(env):
    made = {"a": ingest(env, "a.csv", samples.iris_csv(300, 1), "ACCEPTED", rows=300)}
    manifest = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    # a newer version under the same lake key (what Object Lock and content addressing should prevent)
    env["s3"].put_object(Bucket=LAKE, Key=made["a"]["lake_key"], Body=samples.iris_csv(30, 9, flip=1.0))
    result = LambdaTrainer(env["s3"]).train(manifest, IRIS, TrainingParams(epochs=50))
    assert result.run.rows["train"] + result.run.rows["heldout"] == 300


def test_a_wrong_digest_in_the_manifest_names_the_object(env):
    made = {"a": ingest(env, "a.csv", samples.iris_csv(300, 1), "ACCEPTED", rows=300)}
    env["ddb"].update_item(  # the ledger (and so the manifest) records a digest the lake version does not have
        TableName=TABLE,
        Key={"pk": {"S": f"OBJ#{INGEST}/{made['a']['key']}"}, "sk": {"S": f"V#{made['a']['version']}"}},
        UpdateExpression="SET sha256 = :bad",
        ExpressionAttributeValues={":bad": {"S": "0" * 64}},
    )
    manifest = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    with pytest.raises(DigestMismatch) as err:
        LambdaTrainer(env["s3"]).train(manifest, IRIS)
    assert err.value.uri == f"s3://{LAKE}/{made['a']['lake_key']}?versionId={made['a']['lake_version']}"
    assert str(err.value) == f"DIGEST_MISMATCH: {err.value.uri}: expected sha256 {'0' * 64}, got {made['a']['sha256']}"


def _report(s3, manifest, result, gates, ledger, tmp_path):
    folder = tmp_path / f"package-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    files = unpack(io.BytesIO(result.package), folder)
    scorer = OnnxScorer.load(files["model.onnx"], result.descriptor)
    inputs = inputs_accepted(
        trained_on=result.run.manifest_digest,
        trained_for=("iris", "1"),
        contract=IRIS,
        manifest=manifest,
        ledger=ledger,
    )
    return evaluate_package(
        scorer,
        heldout_from_manifest(s3, manifest, IRIS, seed=1, heldout_fraction=0.2),
        IRIS,
        gates,
        artifact={"bytes": len(result.package), "sha256": result.run.artifact_digest},
        inputs=inputs,
        manifest_digest=manifest.digest,
    )


def test_manifest_train_evaluate_and_a_later_ledger_change_fails_the_gate(env, tmp_path):
    populate(env)
    s3, ledger = env["s3"], env["ledger"]
    built = build_manifest(Ledger(env["ddb"], TABLE), "iris")
    manifest = load_manifest(s3, ARTIFACTS, "iris", built.digest, version_id=store_manifest(s3, ARTIFACTS, built))
    result = LambdaTrainer(s3).train(manifest, IRIS, TrainingParams(seed=1))
    assert result.run.manifest_digest == manifest.digest
    gates = Gates(min_accuracy=0.9, max_parity_difference=0.3, min_disparate_impact=0.4)
    report = _report(s3, manifest, result, gates, ledger, tmp_path)
    assert report.passed, [r.detail for r in report.results if not r.passed]
    assert report.result("inputs_accepted").detail == "all 2 ingest version(s) of 2 object(s) ACCEPTED"
    first = manifest.entries[0].ingest[0]
    env["ddb"].update_item(  # not possible through Ledger (ACCEPTED is final): the gate must not rely on that
        TableName=TABLE,
        Key={"pk": {"S": f"OBJ#{first.bucket}/{first.key}"}, "sk": {"S": f"V#{first.version_id}"}},
        UpdateExpression="SET #s = :rejected",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":rejected": {"S": "REJECTED"}},
    )
    report = _report(s3, manifest, result, gates, ledger, tmp_path)
    assert report.failures == ("inputs_accepted",)
    assert report.result("inputs_accepted").detail == (
        f"1 of 2 ingest version(s): s3://{first.bucket}/{first.key}?versionId={first.version_id} is REJECTED, "
        "not ACCEPTED"
    )

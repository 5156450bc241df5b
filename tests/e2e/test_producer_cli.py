"""A producer's day through the public CLI, and each attack class ending in quarantine with its reason."""

from __future__ import annotations

import json
import os

import pytest

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import run_cli


def push(
    cloud, key_files, path, *, key_id="acme-p256", producer="acme", dataset="iris", key_file=None, quiet=True, extra=()
):
    """`mlvault push PATH ... --wait 30`, signed with `key_file`'s private key (default: key_id's own)."""
    return run_cli(
        cloud,
        "push",
        str(path),
        "--producer",
        producer,
        "--dataset",
        dataset,
        "--key-id",
        key_id,
        "--key",
        str(key_files(key_file or key_id)),
        "--wait",
        "30",
        *(["--quiet"] if quiet else []),
        *extra,
    )


def test_keygen_push_status_verify(cloud, key_files, tmp_path):
    data = tmp_path / "readings.csv"
    data.write_bytes(iris_csv(20, 3))
    pushed = push(cloud, key_files, data)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "verdict: ACCEPTED" in pushed.stdout
    status = run_cli(cloud, "status", "producers/acme/iris/readings.csv", "--json")
    (record,) = json.loads(status.stdout)
    assert record["status"] == "ACCEPTED"
    assert record["location"].startswith("s3://mlvault-dev-lake-")
    signed = run_cli(
        cloud,
        "sign",
        str(data),
        "--producer",
        "acme",
        "--dataset",
        "iris",
        "--key-id",
        "acme-p256",
        "--key",
        str(key_files("acme-p256")),
    )
    envelope = signed.stdout.strip()
    ok = run_cli(cloud, "verify", str(data), "--object-key", "producers/acme/iris/readings.csv", "--envelope", envelope)
    assert ok.returncode == 0
    assert ok.stdout.startswith("ACCEPT signed by acme-p256")
    original = data.read_bytes()
    data.write_bytes(original[:-3] + bytes([original[-3] ^ 1]) + original[-2:])  # same size, one bit flipped
    bad = run_cli(
        cloud, "verify", str(data), "--object-key", "producers/acme/iris/readings.csv", "--envelope", envelope
    )
    assert bad.returncode == 3
    assert bad.stdout.startswith("REJECT DIGEST_MISMATCH")
    key = tmp_path / "new.pem"
    made = run_cli(cloud, "keygen", "--algorithm", "ed25519", "--key-id", "acme-2027", "--out", str(key))
    assert made.returncode == 0
    assert json.loads(made.stdout)["algorithm"] == "ed25519"
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"


def test_large_files_go_multipart_and_verify(cloud, key_files, tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # A sales Parquet file (contracts/sales.json) above the 16 MiB multipart threshold; sales is not a dataset
    # the model pipeline trains, so it does not slow the model tests' training down.
    rows = 2_500_000
    index = pa.array(range(rows), pa.int64())
    table = pa.table(
        {
            "store_id": pc.cast(pc.divide(index, 2500), pa.int32()),
            "day": pc.cast(pc.cast(pc.add(pc.remainder(index, 365), 19000), pa.int32()), pa.date32()),
            "revenue": pc.multiply(pc.random(rows, initializer=5), 1_000_000),
            "promo": pc.equal(pc.remainder(index, 7), 0),
        },
        schema=pa.schema(
            [
                pa.field("store_id", pa.int32(), False),
                pa.field("day", pa.date32(), False),
                pa.field("revenue", pa.float64(), False),
                pa.field("promo", pa.bool_()),
            ]
        ),
    )
    data = tmp_path / "large.parquet"
    pq.write_table(table, data)
    assert data.stat().st_size > 16 * 1024 * 1024
    pushed = push(cloud, key_files, data, key_id="acme-ed25519", dataset="sales", extra=("--contract-version", "3"))
    assert "verdict: ACCEPTED" in pushed.stdout, pushed.stdout + pushed.stderr


def test_revoked_key_is_refused_for_uploads_after_the_revocation(cloud, key_files, tmp_path, ingest):
    data = tmp_path / "after-revocation.csv"
    data.write_bytes(b"1,2\n")
    revoked = run_cli(cloud, "producers", "revoke", "globex-p256", "--reason", "key leaked")
    assert revoked.returncode == 0, revoked.stderr
    pushed = push(cloud, key_files, data, key_id="globex-p256", producer="globex", dataset="sales")
    assert pushed.returncode == 1  # refused before uploading: the stage's ledger has the revocation
    assert pushed.stderr.startswith("mlvault: KEY_REVOKED: key 'globex-p256' was revoked at ")
    assert "nothing was uploaded" in pushed.stderr
    key = "producers/globex/sales/after-revocation.csv"
    assert ingest.records(key) == []
    version = ingest.signed_upload(key, b"1,2\n", key_id="globex-p256")  # uploaded by other means: the verifier
    record = ingest.verdict(key, version)
    assert (record["status"], record["reason"]) == ("REJECTED", "KEY_REVOKED")
    again = run_cli(cloud, "producers", "revoke", "globex-p256", "--reason", "twice")
    assert again.returncode == 3  # the first revocation stands


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("tampered-after-signing", "DIGEST_MISMATCH"),
        ("signed-by-an-unknown-key", "UNKNOWN_KEY"),
        ("envelope-moved-to-another-key", "SUBJECT_MISMATCH"),
        ("another-producers-prefix", "PRODUCER_MISMATCH"),
        ("replayed-envelope", "REPLAYED_SIGNATURE"),
        ("expired-signature", "STALE_SIGNATURE"),
    ],
)
def test_attacks_end_in_quarantine_with_their_reason(ingest, attack, reason):
    key = f"producers/acme/iris/{attack}.csv"
    body = b"label\n1\n"
    if attack == "tampered-after-signing":
        version = ingest.upload(key, b"label\n0\n", Metadata=_envelope_of(ingest, key, body))
    elif attack == "signed-by-an-unknown-key":
        version = ingest.signed_upload(key, body, key_id="mallory-p256")
    elif attack == "envelope-moved-to-another-key":
        version = ingest.upload(key, body, Metadata=_envelope_of(ingest, "producers/acme/iris/original.csv", body))
    elif attack == "another-producers-prefix":
        version = ingest.signed_upload(key, body, producer="globex")
    elif attack == "replayed-envelope":
        metadata = _envelope_of(ingest, key, body)
        ingest.verdict(key, ingest.upload(key, body, Metadata=metadata))
        version = ingest.upload(key, body, Metadata=metadata)
    else:
        version = ingest.signed_upload(key, body, issued_at="2026-01-01T00:00:00Z", expires_at="2026-01-01T01:00:00Z")
    record = ingest.verdict(key, version)
    assert record["status"] == "REJECTED"
    assert record["reason"] == reason
    assert record["quarantine_key"] == f"rejected/{key}/{version}"


def _envelope_of(ingest, key, body):
    from mlvault_tools.testkeys import claim_for, signed_metadata

    return signed_metadata(claim_for(key, body), "acme-p256")


@pytest.mark.parametrize(
    ("producer", "dataset", "key_id", "key_file", "says"),
    [
        ("mallory", "iris", "acme-p256", "acme-p256", "UNKNOWN_PRODUCER: producer 'mallory' is not in the registry"),
        (
            "demo-producer",
            "sales",
            "demo-producer-p256",
            "demo-producer-p256",
            "DATASET_NOT_ALLOWED: producer 'demo-producer' may publish",
        ),
        ("acme", "iris", "acme-2099", "acme-p256", "UNKNOWN_KEY: key 'acme-2099' is not a registered key of"),
        ("acme", "iris", "acme-old-p256", "acme-old-p256", "KEY_EXPIRED: key 'acme-old-p256' is valid 2020-01-01"),
        ("acme", "iris", "acme-p256", "globex-p256", "INVALID_SIGNATURE"),  # the key pair is not the registered one
        ("acme", "orders", "acme-p256", "acme-p256", "DATASET_NOT_ALLOWED"),
    ],
)
def test_push_refuses_before_uploading_what_the_stage_would_refuse(
    cloud, key_files, tmp_path, ingest, producer, dataset, key_id, key_file, says
):
    data = tmp_path / f"typo-{key_id}.csv"
    data.write_bytes(iris_csv(20, 7))
    before = ingest.s3.list_object_versions(Bucket=ingest.bucket, Prefix=f"producers/{producer}/").get("Versions", [])
    pushed = push(cloud, key_files, data, key_id=key_id, producer=producer, dataset=dataset, key_file=key_file)
    assert pushed.returncode == 1, pushed.stdout + pushed.stderr
    (line,) = pushed.stderr.splitlines()
    assert line.startswith(f"mlvault: {says}"), line
    assert line.endswith("(stage dev's trust/dev.json, checked before uploading: nothing was uploaded)")
    assert pushed.stdout == ""
    after = ingest.s3.list_object_versions(Bucket=ingest.bucket, Prefix=f"producers/{producer}/").get("Versions", [])
    assert after == before  # no quarantined copy, no alert: nothing reached the stage
    assert ingest.records(f"producers/{producer}/{dataset}/{data.name}") == []


def test_push_json_status_and_report_say_the_same_verdict(cloud, key_files, tmp_path):
    data = tmp_path / "scripted.csv"
    data.write_bytes(iris_csv(20, 11))
    pushed = push(cloud, key_files, data, quiet=False, extra=("--json",))  # not --quiet: no terminal here
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert pushed.stderr == ""  # no progress bar off a terminal
    answer = json.loads(pushed.stdout)
    assert (answer["key"], answer["verdict"], answer["checked_against"]) == (
        "producers/acme/iris/scripted.csv",
        "ACCEPTED",
        "trust/dev.json",
    )
    status = run_cli(cloud, "status", answer["key"], "--json")
    (record,) = json.loads(status.stdout)
    assert (status.returncode, record["version_id"], record["status"]) == (0, answer["version_id"], "ACCEPTED")
    report = run_cli(cloud, "report", answer["key"], "--json")
    (reported,) = json.loads(report.stdout)
    assert (report.returncode, reported["status"], reported["rows"]) == (0, "ACCEPTED", "20")
    assert reported["location"] == answer["location"]
    missing = run_cli(cloud, "status", "producers/acme/iris/never-pushed.csv")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "mlvault: no upload of producers/acme/iris/never-pushed.csv is recorded in stage dev\n"


def test_revoke_refuses_a_key_no_registry_has(cloud, ingest):
    done = run_cli(cloud, "producers", "revoke", "acme-p265", "--reason", "typo of acme-p256")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "mlvault: key 'acme-p265' is in no producer entry of trust/dev.json: nothing revoked\n"
    item = ingest.ddb.get_item(
        TableName=ingest.ledger, Key={"pk": {"S": "KEY#acme-p265"}, "sk": {"S": "REVOCATION"}}
    ).get("Item")
    assert item is None

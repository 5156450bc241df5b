"""A producer's day through the public CLI, and each attack class ending in quarantine with its reason."""

from __future__ import annotations

import json
import os

import pytest

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import run_cli


def push(cloud, key_files, path, *, key_id="acme-p256", producer="acme", dataset="iris", extra=()):
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
        str(key_files(key_id)),
        "--wait",
        "30",
        "--quiet",
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

"""Data contracts and the poisoning screen on the local cloud, through the public CLI: what a producer checks
before a push is what the gate decides after it; a poisoned batch is held, reported and reviewed."""

from __future__ import annotations

from mlvault_tools.samples import iris_csv
from tests.e2e.conftest import run_cli
from tests.e2e.test_producer_cli import push


def test_the_shift_left_check_and_the_gate_give_the_same_reason(cloud, key_files, tmp_path, ingest):
    data = tmp_path / "out-of-range.csv"
    lines = iris_csv(50, 21).split(b"\n")
    fields = lines[9].split(b",")
    fields[2] = b"42.0"  # sepal_width above the contract's max of 20, in data row 9
    lines[9] = b",".join(fields)
    data.write_bytes(b"\n".join(lines))
    checked = run_cli(cloud, "contract", "check", str(data), "--dataset", "iris")
    assert checked.returncode == 3
    assert checked.stdout.startswith("REJECT OUT_OF_RANGE")
    assert "sepal_width" in checked.stdout
    assert "42" in checked.stdout
    pushed = push(cloud, key_files, data)
    assert pushed.returncode == 3
    assert "verdict: REJECTED OUT_OF_RANGE" in pushed.stdout, pushed.stdout + pushed.stderr


def test_a_poisoned_batch_is_held_reported_and_released_by_a_reviewer(cloud, ingest, key_files, tmp_path):
    for seed in (31, 32):  # enough clean rows for the learned baseline, if earlier tests did not complete it
        key = f"producers/acme/iris/clean-{seed}.csv"
        assert ingest.verdict(key, ingest.signed_upload(key, iris_csv(600, seed)))["status"] == "ACCEPTED"
    key = "producers/acme/iris/poisoned.csv"
    body = iris_csv(600, 33, flip=0.3)
    (tmp_path / "poisoned.csv").write_bytes(body)
    pushed = push(cloud, key_files, tmp_path / "poisoned.csv")  # --wait 30: HELD is a verdict, not a time-out
    assert pushed.returncode == 4, pushed.stdout + pushed.stderr
    version = pushed.stdout.split(" version ")[1].split(" ")[0]
    assert "verdict: HELD POISONING_SUSPECTED: label_feature_psi" in pushed.stdout
    assert f'held for review: mlvault review approve|reject {key} --version {version} --reason "..."' in pushed.stdout
    record = ingest.verdict(key, version)
    assert (record["status"], record["reason"]) == ("HELD", "POISONING_SUSPECTED")
    assert record["quarantine_key"] == f"held/{key}/{version}"

    status = run_cli(cloud, "status", key)
    assert status.returncode == 4  # HELD: waiting for a human
    assert "HELD POISONING_SUSPECTED: label_feature_psi" in status.stdout
    assert f"mlvault review approve|reject {key} --version {version}" in status.stdout
    report = run_cli(cloud, "report", key)
    assert report.returncode == 4, report.stderr
    assert "contract: iris v1 (csv), 600 rows valid" in report.stdout
    assert "profile: 600 rows; labels:" in report.stdout

    approved = run_cli(cloud, "review", "approve", key, "--reason", "new season, checked with acme")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert f"{key} version {version}: ACCEPTED by arn:aws:" in approved.stdout
    record = ingest.verdict(key, version)
    assert record["status"] == "ACCEPTED"
    assert record["review_reason"] == "new season, checked with acme"
    lake = ingest.s3.get_object(Bucket=record["lake_bucket"], Key=record["lake_key"], VersionId=record["lake_version"])
    assert lake["Body"].read() == body
    again = run_cli(cloud, "review", "reject", key, "--reason", "second thoughts")
    assert again.returncode == 1
    assert again.stderr == f"mlvault: no held {key} in stage dev: nothing to review\n"

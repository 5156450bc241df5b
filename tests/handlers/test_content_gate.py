"""The content gate inside the verify handler (moto): data contracts, the poisoning screen, held uploads and
their review; and the gate's rolling screen of small batches, its state in the ledger. Each upload is validly
signed: only its content decides."""

from __future__ import annotations

import io
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlvault.contracts.screen import Profile
from mlvault.errors import ContractReason
from mlvault.ingest.review import ReviewError
from mlvault.ledger import Ledger
from mlvault_tools import testkeys
from mlvault_tools.samples import iris_batch, iris_csv, loans_csv
from tests.handlers.conftest import ROOT, LambdaContext, load_handler, s3_body, sqs_event

verify = load_handler("verify")
review = load_handler("review")
reconcile = load_handler("reconcile")
K = "producers/acme/iris/batch.csv"


def push(env, body: bytes, key: str = K, **changes) -> tuple[str, object]:
    """Upload `body` signed by acme, run the verify handler on its notification, return (version, record)."""
    metadata = testkeys.signed_metadata(testkeys.claim_for(key, body, **changes), "acme-p256")
    version = env["s3"].put_object(Bucket=env["ingest"], Key=key, Body=body, Metadata=metadata)["VersionId"]
    assert verify.handler(sqs_event(s3_body(env["ingest"], key, version, len(body))), LambdaContext()) == {
        "batchItemFailures": []
    }
    return version, Ledger(env["ddb"], "ledger").get(env["ingest"], key, version)


def lake_objects(env) -> list[str]:
    return [o["Key"] for o in env["s3"].list_objects_v2(Bucket=env["lake"]).get("Contents", [])]


def messages(env, queue: str) -> list[dict]:
    received = env["sqs"].receive_message(QueueUrl=env[queue], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in received]


def task_root(tmp_path, monkeypatch, *, datasets: tuple[str, ...] = (), **screening) -> None:
    """The function's bundle with an iris contract whose screening section is changed, and acme also trusted for
    `datasets`."""
    shutil.copytree(ROOT / "trust", tmp_path / "trust")
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    iris = json.loads((ROOT / "contracts/iris.json").read_text())
    iris["screening"].update(screening)
    (tmp_path / "contracts/iris.json").write_text(json.dumps(iris))
    trust = json.loads((ROOT / "trust/dev.json").read_text())
    trust["producers"]["acme"]["datasets"] += list(datasets)
    (tmp_path / "trust/dev.json").write_text(json.dumps(trust))
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))


def learn_baseline(env) -> None:
    for seed in (1, 2):  # 2 x 600 rows: the learned baseline (baseline_rows 1000) is complete
        _, rec = push(env, iris_csv(600, seed))
        assert rec.status == "ACCEPTED"
        assert "learning" in rec.attributes["screen"]


CLEAN = iris_csv(40, 7)


@pytest.mark.parametrize(
    ("body", "changes", "reason", "detail"),
    [
        (CLEAN.replace(b",setosa\n", b",rose\n", 1), {}, ContractReason.VALUE_NOT_ALLOWED, "rose"),
        (CLEAN.replace(b",,", b",=HYPERLINK(x),", 1), {}, ContractReason.FORMULA_INJECTION, "notes"),
        (CLEAN.replace(b"fr-01", b"FR_01", 1), {}, ContractReason.PATTERN_MISMATCH, "site"),
        (CLEAN.replace(b'"species"', b'"label"', 1), {}, ContractReason.MISSING_COLUMN, "species"),
        (CLEAN, {"contract_version": "2"}, ContractReason.CONTRACT_VERSION_MISMATCH, "v2"),
        (b"", {}, ContractReason.EMPTY_FILE, ""),
        (
            CLEAN.decode().encode("utf-16"),
            {},
            ContractReason.BAD_ENCODING,
            "at byte 0 (in the header): a UTF-16 byte-order mark (the file is UTF-16, not UTF-8)",
        ),
        (bytes(range(256)) * 16, {}, ContractReason.BAD_ENCODING, "at byte 0 (in the header): a NUL byte"),
        (b"x" * (1 << 20), {}, ContractReason.LINE_TOO_LONG, "the line starting at byte 0 (the header) runs for"),
        (CLEAN + b"41,5.0\n", {}, ContractReason.RAGGED_ROW, "row 41 has 2 fields, expected 8: '41,5.0'"),
        (
            CLEAN + b"41,5.0,3.0,1.0,0.1,fr-01,,setosa\n41,5.0,3.0,1.0,0.1,fr-01,,setosa\n",
            {},
            ContractReason.DUPLICATE_KEY,
            "column sample_id must strictly increase; row 42 has 41 after 41",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isupper() else "",
)
def test_a_signed_upload_that_breaks_its_contract_is_quarantined_with_the_reason(
    ingest_env, body, changes, reason, detail
):
    version, rec = push(ingest_env, body, **changes)
    assert (rec.status, rec.attributes["reason"]) == ("REJECTED", reason), rec.attributes["detail"]
    assert detail in rec.attributes["detail"]
    assert rec.attributes["quarantine_key"] == f"rejected/{K}/{version}"
    assert lake_objects(ingest_env) == []
    assert messages(ingest_env, "alerts")[0]["reason"] == reason


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_parquet_is_validated_from_a_spooled_copy_and_its_schema_compared_exactly(ingest_env):
    fields = [("store_id", pa.int32()), ("day", pa.date32()), ("revenue", pa.float64())]
    schema = pa.schema([pa.field(n, t, nullable=False) for n, t in fields] + [pa.field("promo", pa.bool_())])
    rows = {"store_id": [1, 2], "day": [19000, 19001], "revenue": [10.5, 20.0], "promo": [True, None]}
    _, rec = push(ingest_env, _parquet(pa.table(rows, schema)), "producers/acme/sales/d.parquet", contract_version="3")
    assert rec.status == "ACCEPTED", rec.attributes.get("detail")
    assert rec.attributes["rows"] == "2"
    wider = schema.set(0, pa.field("store_id", pa.int64(), nullable=False))
    _, rec = push(ingest_env, _parquet(pa.table(rows, wider)), "producers/acme/sales/d.parquet", contract_version="3")
    assert rec.attributes["reason"] == ContractReason.SCHEMA_MISMATCH
    assert "int64" in rec.attributes["detail"]


def test_a_poisoned_batch_is_held_and_a_fresh_clean_batch_is_accepted(ingest_env):
    learn_baseline(ingest_env)
    _, clean = push(ingest_env, iris_csv(600, 3))
    assert clean.status == "ACCEPTED"
    assert clean.attributes["screen"].startswith("no shift (baseline: learned from 1200 rows of 2 accepted batches)")
    held_version, held = push(ingest_env, iris_csv(600, 4, flip=0.3))
    assert (held.status, held.attributes["reason"]) == ("HELD", ContractReason.POISONING_SUSPECTED)
    assert "label_feature_psi petal_length|" in held.attributes["detail"]  # flipped labels move features per label
    assert held.attributes["quarantine_key"] == f"held/{K}/{held_version}"
    assert len(lake_objects(ingest_env)) == 3  # the held batch is not in the lake: training cannot see it
    alerts = messages(ingest_env, "alerts")
    assert [a["status"] for a in alerts] == ["HELD"]
    events = [e["detail-type"] for e in messages(ingest_env, "events")]
    assert events.count("Upload Held") == 1
    stored = Ledger(ingest_env["ddb"], "ledger").profile(ingest_env["ingest"], K, held_version)
    assert Profile.from_bytes(stored).rows == 600


def test_a_shifted_feature_is_held_naming_the_feature(ingest_env):
    learn_baseline(ingest_env)
    _, held = push(ingest_env, iris_csv(600, 5, shift=1.5))
    assert held.status == "HELD"
    assert "feature_psi sepal_length" in held.attributes["detail"]


def decide(env, version: str, decision: str, reason: str = "checked with the producer") -> dict:
    event = {"key": K, "version_id": version, "decision": decision, "reason": reason, "reviewed_by": "arn:test:alice"}
    return review.handler(event, LambdaContext())


def test_a_reviewer_releases_a_held_batch_into_the_lake_once(ingest_env):
    learn_baseline(ingest_env)
    body = iris_csv(600, 4, flip=0.3)
    version, _ = push(ingest_env, body)
    released = decide(ingest_env, version, "approve")
    assert released["status"] == "ACCEPTED"
    rec = Ledger(ingest_env["ddb"], "ledger").get(ingest_env["ingest"], K, version)
    assert (rec.attributes["reviewed_by"], rec.attributes["review_reason"]) == (
        "arn:test:alice",
        "checked with the producer",
    )
    lake = ingest_env["s3"].get_object(
        Bucket=ingest_env["lake"], Key=rec.attributes["lake_key"], VersionId=rec.attributes["lake_version"]
    )
    assert lake["Body"].read() == body
    with pytest.raises(ReviewError, match="is ACCEPTED, not HELD"):
        decide(ingest_env, version, "reject")


def test_a_reviewer_rejects_a_held_batch_and_it_never_reaches_the_lake(ingest_env):
    learn_baseline(ingest_env)
    version, _ = push(ingest_env, iris_csv(600, 4, flip=0.3))
    with pytest.raises(ReviewError, match="needs a reason"):
        decide(ingest_env, version, "reject", reason=" ")
    assert decide(ingest_env, version, "reject", "labels flipped")["status"] == "REJECTED"
    assert len(lake_objects(ingest_env)) == 2
    with pytest.raises(ReviewError, match="is REJECTED, not HELD"):
        decide(ingest_env, version, "approve")


def test_the_reconciler_leaves_held_batches_to_humans(ingest_env):
    learn_baseline(ingest_env)
    version, _ = push(ingest_env, iris_csv(600, 4, flip=0.3))
    report = reconcile.handler({}, LambdaContext())
    assert (report["unaccounted"], report["redriven"], report["quarantined"]) == (0, 0, 0)
    assert Ledger(ingest_env["ddb"], "ledger").get(ingest_env["ingest"], K, version).status == "HELD"


def test_a_contract_that_says_reject_quarantines_the_poisoned_batch(ingest_env, tmp_path, monkeypatch):
    task_root(tmp_path, monkeypatch, action="reject")
    learn_baseline(ingest_env)
    version, rec = push(ingest_env, iris_csv(600, 4, flip=0.3))
    assert (rec.status, rec.attributes["reason"]) == ("REJECTED", ContractReason.POISONING_SUSPECTED)
    assert rec.attributes["quarantine_key"] == f"rejected/{K}/{version}"


def test_a_pinned_baseline_screens_the_first_batch(ingest_env, tmp_path, monkeypatch):
    from mlvault.contracts.schema import load_contract
    from mlvault.contracts.screen import build_profile

    task_root(tmp_path, monkeypatch, baseline="baselines/iris-v1.json")
    (tmp_path / "contracts/baselines").mkdir()
    contract = load_contract(ROOT / "contracts", "iris")
    pinned = build_profile([iris_batch(2000, 11)], contract)
    (tmp_path / "contracts/baselines/iris-v1.json").write_text(json.dumps(pinned.to_json()))
    _, rec = push(ingest_env, iris_csv(600, 4, flip=0.3))
    assert rec.status == "HELD"
    assert "(baseline: pinned baselines/iris-v1.json)" in rec.attributes["detail"]
    _, rec = push(ingest_env, iris_csv(600, 12))
    assert rec.status == "ACCEPTED"


def test_small_batches_raise_no_false_alarm_and_say_they_were_not_screened(ingest_env):
    learn_baseline(ingest_env)
    for seed in range(40, 50):  # clean batches of 10 to 55 rows: too small for the statistics
        _, rec = push(ingest_env, iris_csv(10 + 5 * (seed - 40), seed))
        assert rec.status == "ACCEPTED", rec.attributes["screen"]
        assert "not screened: " in rec.attributes["screen"]
        assert "fewer than min_rows 100" in rec.attributes["screen"]
    for seed in range(50, 60):  # from min_rows on, clean batches are screened, beyond their sampling noise
        _, rec = push(ingest_env, iris_csv(100 + 50 * (seed - 50), seed))
        assert rec.status == "ACCEPTED", rec.attributes["screen"]
        assert rec.attributes["screen"].startswith("no shift")


# --- issue 11, item 4: every file, every reason, named right ----------------------------------------------


def _with_notes(rows: int, seed: int) -> bytes:
    import pyarrow.csv as pacsv

    batch = iris_batch(rows, seed)
    notes = pa.array(["checked" if i % 2 else None for i in range(rows)], pa.string())
    batch = batch.set_column(batch.schema.get_field_index("notes"), batch.schema.field("notes"), notes)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_batches([batch]), sink, pacsv.WriteOptions(quoting_style="none"))
    return sink.getvalue().to_pybytes()


def test_a_clean_batch_without_an_optional_column_is_accepted(ingest_env):
    for seed in (1, 2):  # a learned baseline whose batches have notes
        _, rec = push(ingest_env, _with_notes(600, seed))
        assert rec.status == "ACCEPTED"
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_batches([iris_batch(600, 3)]).drop_columns(["notes"]), sink)
    _, rec = push(ingest_env, sink.getvalue().to_pybytes())
    assert rec.status == "ACCEPTED", rec.attributes.get("detail")
    assert rec.attributes["screen"].startswith("no shift (baseline: learned from 1200 rows of 2 accepted batches)")


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (
            b'{"event_id": "ev-0000000a", "user_age": 31, "income": 1e400}\n',
            ContractReason.NON_FINITE,
            "column income: row 1 has 1e400, which is not finite; expected finite numbers",
        ),
        (
            b'{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000b", "user_age": 3, "zip": "x"}\n',
            ContractReason.UNEXPECTED_COLUMN,
            "column(s) ['zip'] (row 2) are not in contract events v1",
        ),
        (
            b'{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000a", "user_age": 32}\n',
            ContractReason.DUPLICATE_KEY,
            "column event_id must be unique; 1 row(s) repeat an earlier row's value: 'ev-0000000a' at rows [1, 2]",
        ),
    ],
    ids=["1e400", "undeclared", "unique"],
)
def test_json_lines_uploads_are_refused_naming_the_field_and_row(
    ingest_env, tmp_path, monkeypatch, body, reason, detail
):
    task_root(tmp_path, monkeypatch, datasets=("events",))
    _, rec = push(ingest_env, body, "producers/acme/events/e.jsonl")
    assert (rec.status, rec.attributes["reason"], rec.attributes["detail"]) == ("REJECTED", reason, detail)


# --- issue 11, item 5: label flips on loans; the rolling screen of small batches ---------------------------

LOANS_KEY = "producers/acme/loans/batch.csv"


def test_loans_with_a_fifth_of_labels_flipped_are_held_by_the_label_conditional_view(ingest_env, tmp_path, monkeypatch):
    task_root(tmp_path, monkeypatch, datasets=("loans",))
    for seed in range(10):  # the loans contract learns a baseline of 10,000 rows
        _, rec = push(ingest_env, loans_csv(1000, 1000 + seed), LOANS_KEY)
        assert (rec.status, "learning" in rec.attributes["screen"]) == ("ACCEPTED", True)
    _, clean = push(ingest_env, loans_csv(1000, 2000), LOANS_KEY)
    assert clean.attributes["screen"].startswith("no shift (baseline: learned from 10000 rows of 10 accepted")
    _, held = push(ingest_env, loans_csv(1000, 2001, flip=0.2), LOANS_KEY)
    assert (held.status, held.attributes["reason"]) == ("HELD", ContractReason.POISONING_SUSPECTED)
    assert "label_flip income: " in held.attributes["detail"]


def _loans_gate(env, tmp_path, **screening):
    """A content gate over the moto ledger, with a pinned loans baseline (the verify function's gate, given the
    producer and the batch's key#version)."""
    from mlvault.contracts.gate import ContentGate
    from mlvault.contracts.schema import load_contract
    from mlvault.contracts.screen import build_profile
    from mlvault_tools.samples import loans_batch

    contracts = tmp_path / "contracts"
    shutil.copytree(ROOT / "contracts", contracts)
    loans = json.loads((contracts / "loans.json").read_text())
    loans["screening"].update(baseline="baselines/loans-v1.json", **screening)
    (contracts / "baselines").mkdir()
    pinned = build_profile([loans_batch(10_000, 7)], load_contract(ROOT / "contracts", "loans"))
    (contracts / "baselines/loans-v1.json").write_text(json.dumps(pinned.to_json()))
    (contracts / "loans.json").write_text(json.dumps(loans))
    return ContentGate(contracts, Ledger(env["ddb"], "ledger"))


def _small(gate, body: bytes, source: str, producer: str = "acme"):
    return gate.inspect(
        dataset="loans",
        contract_version="1",
        size=len(body),
        open_body=lambda: io.BytesIO(body),
        producer=producer,
        source=source,
    )


def test_poison_split_into_small_batches_is_held_when_the_window_fills(ingest_env, tmp_path):
    gate = _loans_gate(ingest_env, tmp_path, min_rows=400)
    sources = [f"producers/acme/loans/b{i}.csv#v{i}" for i in range(8)]
    for i, source in enumerate(sources[:7]):  # 7 x 50 rows: under min_rows, each accepted, counted in the window
        inspection = _small(gate, loans_csv(50, 500 + i, flip=0.3), source)
        assert (inspection.action, inspection.findings) == ("accept", ())
        assert inspection.summary().endswith(
            f"not screened: 50 rows, fewer than min_rows 400; in rolling window 1 of producer acme: "
            f"{50 * (i + 1)} of 400 rows in {i + 1} batches)"
        )
    held = _small(gate, loans_csv(50, 507, flip=0.3), sources[7])  # the window reaches 400 rows: screened
    assert held.action == "hold"
    assert "label_flip" in {f.check for f in held.findings}
    assert held.summary().endswith(
        "completes rolling window 1 of producer acme, screened as one batch of 400 rows (flagged); its 8 batches: "
        + ", ".join(sources)
        + ")"
    )
    retry = _small(gate, loans_csv(50, 507, flip=0.3), sources[7])  # a retry of the batch that closed the window
    assert (retry.action, retry.findings) == ("hold", held.findings)
    again = _small(gate, loans_csv(50, 500, flip=0.3), sources[0])  # a retry of a batch of the closed window
    assert (again.action, "in rolling window 1 of producer acme, screened with it" in again.summary()) == (
        "accept",
        True,
    )
    stored = Ledger(ingest_env["ddb"], "ledger").small_batches("loans", "1", "acme")
    assert (stored.number, stored.batches, stored.rows) == (2, (), 0)
    assert json.loads(stored.last)["batches"] == sources


def test_clean_small_batches_fill_windows_without_false_alarms_and_each_producer_has_its_own(ingest_env, tmp_path):
    gate = _loans_gate(ingest_env, tmp_path, min_rows=200)
    for i in range(12):  # 3 windows of 4 x 50 rows
        inspection = _small(gate, loans_csv(50, 600 + i), f"producers/acme/loans/c{i}.csv#v1")
        assert inspection.findings == (), inspection.summary()
    other = _small(gate, loans_csv(50, 700), "producers/globex/loans/c0.csv#v1", producer="globex")
    assert "in rolling window 1 of producer globex: 50 of 200 rows in 1 batches" in other.summary()
    assert Ledger(ingest_env["ddb"], "ledger").small_batches("loans", "1", "acme").number == 4
    again = _small(gate, loans_csv(50, 700), "producers/globex/loans/c0.csv#v1", producer="globex")
    assert "in rolling window 1 of producer globex: 50 of 200 rows" in again.summary()  # a retry counts once


def test_concurrent_verifications_never_lose_a_small_batch(ingest_env, tmp_path):
    """Another verification writes the window between this one's read and write: the conditional write fails,
    the gate reads again and adds its batch to the other's."""
    gate = _loans_gate(ingest_env, tmp_path, min_rows=400)
    ledger = gate._ledger
    real_put = ledger.put_small_batches
    raced = []

    def racing_put(dataset, version, producer, window, *, after):
        if not raced:
            raced.append(True)
            _small(_loans_gate(ingest_env, tmp_path / "other", min_rows=400), loans_csv(50, 801), "other.csv#v1")
        return real_put(dataset, version, producer, window, after=after)

    ledger.put_small_batches = racing_put
    inspection = _small(gate, loans_csv(50, 800), "mine.csv#v1")
    assert "in rolling window 1 of producer acme: 100 of 400 rows in 2 batches" in inspection.summary()
    assert Ledger(ingest_env["ddb"], "ledger").small_batches("loans", "1", "acme").batches == (
        "other.csv#v1",
        "mine.csv#v1",
    )


def test_without_the_producer_a_small_batch_is_accepted_unscreened_as_before(ingest_env, tmp_path):
    gate = _loans_gate(ingest_env, tmp_path, min_rows=400)
    body = loans_csv(50, 900, flip=0.3)
    inspection = gate.inspect(dataset="loans", contract_version="1", size=len(body), open_body=lambda: io.BytesIO(body))
    assert inspection.summary().endswith("not screened: 50 rows, fewer than min_rows 400)")
    assert Ledger(ingest_env["ddb"], "ledger").small_batches("loans", "1", "acme") is None

"""S3 event notifications parsed into exact object versions."""

from __future__ import annotations

import json

import pytest

from mlvault.ingest.events import MalformedEventError, parse_message_body

EVENTS = __import__("pathlib").Path(__file__).parents[1] / "events"


def test_parses_the_canonical_event():
    (ref,) = parse_message_body((EVENTS / "s3_object_created.json").read_text())
    assert ref.bucket == "mlvault-dev-ingest-123456789012-eu-west-1"
    assert ref.key == "producers/acme/iris/batch 1+final.csv"
    assert ref.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert ref.size == 1024
    assert ref.sequencer == "0055AED6DCD90281E5"


def test_s3_test_event_announces_nothing():
    assert parse_message_body(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ("{}", "no S3 Records"),
        (json.dumps({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}), "has no versionId"),
        (
            json.dumps({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "versionId": "null"}}}]}),
            "has no versionId",
        ),
        (json.dumps({"Records": [{"s3": {"object": {"key": "k", "versionId": "v"}}}]}), "malformed S3 event record"),
    ],
)
def test_malformed_messages_are_refused(body, message):
    with pytest.raises(MalformedEventError, match=message):
        parse_message_body(body)

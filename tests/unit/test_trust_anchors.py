"""The bundled trust anchors (mlvault.trust.anchors) fail closed with a stable code, and the alarm history reader
(mlvault.rollout.alarm_history) counts what it cannot read as an alarm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mlvault.errors import TrustAnchorError
from mlvault.rollout.alarm_history import AlarmHistory
from mlvault.trust.anchors import load_anchors, parse_anchors
from tests.unit.documents import changed

ARN = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
GOOD = {
    "stage": "dev",
    "model_signing_key": {"arn": ARN, "public_key_sha256": "a" * 64},
    "alarms": {"rollback": ["errors", "drift"], "canary": ["errors", "refused", "drift"]},
}


def _changed(path: str, value) -> bytes:
    return changed(GOOD, path, value)


def test_the_documented_shape_loads():
    anchors = parse_anchors(json.dumps(GOOD).encode(), stage="dev")
    assert anchors.model_signing_key.arn == ARN
    assert anchors.model_signing_key.region == "eu-west-1"
    assert anchors.rollback_alarms == ("errors", "drift")
    assert anchors.canary_alarms == ("errors", "refused", "drift")


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (b"", "ANCHORS_MALFORMED", "expected a JSON object"),
        (b"[]", "ANCHORS_MALFORMED", "expected an object"),
        (b'{"stage": "dev", "stage": "dev"}', "ANCHORS_MALFORMED", "duplicate fields ['stage']"),
        (_changed("alarms", KeyError), "ANCHORS_MALFORMED", "missing ['alarms']"),
        (_changed("extra", 1), "ANCHORS_MALFORMED", "unknown ['extra']"),
        (_changed("model_signing_key.public_key_sha256", "A" * 64), "ANCHORS_MALFORMED", "64 lowercase hex"),
        (_changed("model_signing_key.arn", "alias/mlvault"), "SIGNING_KEY_NOT_PINNED", "an alias can be repointed"),
        (_changed("model_signing_key.arn", ARN.replace("key/", "alias/")), "SIGNING_KEY_NOT_PINNED", "alias"),
        (_changed("model_signing_key.arn", "11111111-2222-3333-4444-555555555555"), "ANCHORS_MALFORMED", "key ARN"),
        (_changed("alarms.rollback", []), "ANCHORS_MALFORMED", "non-empty list"),
        (_changed("alarms.canary", ["a", "a"]), "ANCHORS_MALFORMED", "each alarm once"),
        (_changed("alarms.canary", ["bad\nname"]), "ANCHORS_MALFORMED", "alarm names"),
        (_changed("stage", "prod"), "ANCHORS_WRONG_STAGE", "of stage 'prod'"),
        (b"x" * (64 * 1024 + 1), "ANCHORS_MALFORMED", "at most"),
    ],
)
def test_anything_else_is_refused_with_its_code(data, reason, detail):
    with pytest.raises(TrustAnchorError) as caught:
        parse_anchors(data, stage="dev")
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_no_file_is_anchors_missing(tmp_path):
    with pytest.raises(TrustAnchorError, match="ANCHORS_MISSING"):
        load_anchors(tmp_path / "trust" / "anchors.json", stage="dev")


class FakeCloudWatch:
    def __init__(self, state: str, items: list[dict]) -> None:
        self.state, self.items = state, items

    def describe_alarms(self, **kwargs):
        return {"MetricAlarms": [{"AlarmName": n, "StateValue": self.state} for n in kwargs["AlarmNames"] if n == "a"]}

    def describe_alarm_history(self, **kwargs):
        return {"AlarmHistoryItems": self.items}


NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "items", "fired"),
    [
        ("OK", [], []),
        ("ALARM", [], ["a"]),
        (
            "OK",
            [
                {
                    "Timestamp": NOW,
                    "HistoryData": '{"oldState": {"stateValue": "ALARM"}, "newState": {"stateValue": "OK"}}',
                }
            ],
            ["a"],
        ),
        ("OK", [{"Timestamp": NOW, "HistorySummary": "Alarm updated from OK to ALARM"}], ["a"]),
        ("OK", [{"Timestamp": NOW, "HistoryData": "not json", "HistorySummary": "?"}], ["a"]),  # unreadable: fired
        ("OK", [{"Timestamp": NOW, "HistorySummary": "Alarm updated from INSUFFICIENT_DATA to OK"}], []),
    ],
)
def test_an_alarm_fired_if_it_touched_alarm_in_the_window_or_cannot_be_read(state, items, fired):
    history = AlarmHistory(FakeCloudWatch(state, items))
    assert [name for name, _ in history.fired_since(("a",), NOW - timedelta(minutes=1), NOW)] == fired


def test_an_alarm_that_does_not_exist_counts_as_fired():
    history = AlarmHistory(FakeCloudWatch("OK", []))
    [(name, detail)] = history.fired_since(("missing",), NOW - timedelta(minutes=1), NOW)
    assert name == "missing"
    assert "no such alarm" in detail

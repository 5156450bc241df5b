"""Gap 22: DescribeAlarmHistory, which moto lacks, answers each change of an alarm's state as AWS does
(StateUpdate items, newest first unless ScanBy=TimestampAscending, the window inclusive, pages of MaxRecords)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from localcloud.services.cloudwatch import alarm_history


@pytest.fixture
def cw(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    alarm_history()
    with mock_aws():
        client = boto3.client("cloudwatch")
        for name in ("a", "b"):
            client.put_metric_alarm(
                AlarmName=name,
                Namespace="n",
                MetricName="m",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanThreshold",
            )
        yield client


def test_each_change_of_state_is_one_item_newest_first(cw):
    start = datetime.now(UTC) - timedelta(seconds=1)
    for state in ("ALARM", "ALARM", "OK"):  # the second ALARM changes nothing: no item, as no event
        cw.set_alarm_state(AlarmName="a", StateValue=state, StateReason=f"to {state}")
    cw.set_alarm_state(AlarmName="b", StateValue="ALARM", StateReason="other")
    items = cw.describe_alarm_history(AlarmName="a", HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert [i["HistorySummary"] for i in items] == ["Alarm updated from ALARM to OK", "Alarm updated from OK to ALARM"]
    data = json.loads(items[0]["HistoryData"])
    assert (data["oldState"]["stateValue"], data["newState"]["stateValue"]) == ("ALARM", "OK")
    assert data["newState"]["stateReason"] == "to OK"
    assert items[0]["Timestamp"] >= items[1]["Timestamp"] >= start
    ascending = cw.describe_alarm_history(AlarmName="a", ScanBy="TimestampAscending")["AlarmHistoryItems"]
    assert [i["HistorySummary"] for i in ascending] == [i["HistorySummary"] for i in reversed(items)]


def test_the_window_and_the_pages(cw):
    cw.set_alarm_state(AlarmName="a", StateValue="ALARM", StateReason="x")
    cw.set_alarm_state(AlarmName="a", StateValue="OK", StateReason="y")
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert cw.describe_alarm_history(AlarmName="a", StartDate=later)["AlarmHistoryItems"] == []
    first = cw.describe_alarm_history(AlarmName="a", MaxRecords=1)
    assert len(first["AlarmHistoryItems"]) == 1
    second = cw.describe_alarm_history(AlarmName="a", MaxRecords=1, NextToken=first["NextToken"])
    assert second["AlarmHistoryItems"][0]["HistorySummary"] == "Alarm updated from OK to ALARM"
    assert "NextToken" not in second
    assert cw.describe_alarm_history(AlarmName="a", HistoryItemType="Action")["AlarmHistoryItems"] == []

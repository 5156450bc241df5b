"""The event source mapping poller: what Lambda's SQS pollers do, for each enabled SQS mapping.

Reads up to BatchSize messages (waiting up to MaximumBatchingWindowInSeconds to fill a batch), invokes the
function once with the batch, then deletes the messages it processed: all of them on success; with
ReportBatchItemFailures, all but the reported ones; none on a function error or an invalid response (AWS
semantics: the rest become visible again after the queue's visibility timeout, and the redrive policy moves
them to the DLQ after maxReceiveCount receives). The poller reads with the function's role, as Lambda does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

POLL_INTERVAL = 0.1


class SqsPoller:
    def __init__(
        self,
        *,
        client: Callable[[str, str], Any],
        invoke: Callable[..., Any],
        region: str,
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self._client = client  # (service, principal ARN) -> boto3 client signed as that principal
        self._invoke = invoke
        self._region = region
        self._record = record
        self._mappings: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sqs-poller")

    def add(
        self,
        mapping: dict[str, Any],
        *,
        function_name: str,
        role_arn: str,
        environment: Callable[[], dict],
        live: Callable[[], Any],
    ) -> None:
        """`live()` returns moto's mapping object: its enabled flag, batch size and window are read on every poll,
        so UpdateEventSourceMapping takes effect as in AWS."""
        sqs = self._client("sqs", role_arn)
        name = mapping["EventSourceArn"].split(":")[5]
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._mappings.append(
            {
                **mapping,
                "function_name": function_name,
                "queue_url": url,
                "sqs": sqs,
                "environment": environment,
                "live": live,
            }
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            for mapping in self._mappings:
                try:
                    esm = mapping["live"]()
                    if not esm.enabled:
                        continue
                    mapping["BatchSize"] = esm.batch_size
                    mapping["MaximumBatchingWindowInSeconds"] = esm.max_batch_window
                    mapping["FunctionResponseTypes"] = esm.function_response_types
                    busy |= self._poll(mapping)
                except Exception as err:  # noqa: BLE001 - keep polling; the failure is recorded
                    self._record({"kind": "poller-error", "mapping": mapping["UUID"], "error": repr(err)})
            if not busy:
                self._stop.wait(POLL_INTERVAL)

    def _poll(self, mapping: dict[str, Any]) -> bool:
        sqs, url = mapping["sqs"], mapping["queue_url"]
        batch_size = int(mapping.get("BatchSize") or 10)
        window = float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + window
        while len(messages) < batch_size:
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if not messages or (not got and time.monotonic() >= deadline) or self._stop.is_set():
                break
            if not got:
                time.sleep(POLL_INTERVAL)
        if not messages:
            return False
        event = {"Records": [_record(m, mapping["EventSourceArn"], self._region) for m in messages]}
        result = self._invoke(mapping["function_name"], event, mapping["environment"](), source="sqs")
        failed = _failed_ids(
            result, messages, "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
        )
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            )
        self._record(
            {
                "kind": "sqs-batch",
                "function": mapping["function_name"],
                "queue": mapping["EventSourceArn"],
                "messages": len(messages),
                "failed": len(failed),
                "errored": result.errored,
            }
        )
        return True


def _failed_ids(result: Any, messages: list[dict[str, Any]], partial: bool) -> set[str]:
    everything = {m["MessageId"] for m in messages}
    if result.errored:
        return everything
    if not partial:
        return set()
    try:
        response = json.loads(result.payload) if result.payload else None
    except json.JSONDecodeError:
        return everything
    if response is None:
        return set()
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if failures is None:
        return set()
    ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
    if not ids <= everything or None in ids or "" in ids:
        return everything  # an invalid response fails the whole batch, as Lambda treats it
    return ids


def _record(message: dict[str, Any], source_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"), "dataType": v["DataType"]}
            for k, v in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }

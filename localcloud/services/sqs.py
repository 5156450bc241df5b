"""SQS: event source mappings (gap 4).

4. SQS event source mappings. moto invokes the function inside SendMessage, one message per call, ignoring
   ReportBatchItemFailures. Here moto's delivery is detached and the local cloud's poller (pollers.py) reads
   batches of BatchSize and deletes only what the function reports as processed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    """Detach moto's own delivery of every event source mapping created from now on (the cloud is unused)."""
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    original = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)  # the poller delivers instead
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping

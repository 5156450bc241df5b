"""Serve function: {"rows": [{feature: value, ...}, ...]}
-> {"predictions": [...], "model": {"id", "digest", "version"}}.

Thin adapter (GUIDE.md section 2): the library attests the pinned model before anything is served
(mlvault.models.serving). A refused model is loud on every invocation: the metric ModelAttestationFailed (namespace
"mlvault", dimension sets [Stage] and [Stage, Reason]) as EMF, an error log line with the reason code, and the
invocation fails. Nothing is served until the model checks out.
"""

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from mlvault.models import serving
from mlvault.observability import logger

NAMESPACE = "mlvault"
METRIC = "ModelAttestationFailed"


def _refused(err: serving.AttestationError) -> None:
    logger.error(
        "model attestation failed: not serving",
        extra={
            "reason": err.reason,
            "detail": err.detail,
            "stage": err.stage,
            "model_id": err.model_id,
            "model_version": err.model_version,
        },
    )
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="")  # no service dimension: alarms name Stage only
    metrics.add_metric(name=METRIC, unit=MetricUnit.Count, value=1)
    metrics.add_dimension(name="Stage", value=err.stage or "unknown")
    metrics.add_dimensions(Stage=err.stage or "unknown", Reason=err.reason)
    metrics.add_metadata(key="model_id", value=err.model_id)
    metrics.add_metadata(key="model_version", value=err.model_version)
    metrics.flush_metrics()


@logger.inject_lambda_context
def handler(event, context):
    try:
        served = serving.default_server().model()
    except serving.AttestationError as err:
        _refused(err)
        raise
    return serving.serve(served, serving.parse_rows(event))

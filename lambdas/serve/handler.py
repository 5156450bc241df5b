"""Serve function: {"rows": [{feature: value, ...}, ...]}
-> {"predictions": [...], "model": {"id", "digest", "version"}}, or {"error": {"code", "field", "message", "kind"}}
(the format: mlvault.serving.request_schema; docs/models.md).

Thin adapter (GUIDE.md section 2): the library attests the pinned model before anything is served
(mlvault.serving.loader). A refused model is loud on every invocation: the metric ModelAttestationFailed (namespace
"mlvault", dimension sets [Stage] and [Stage, Reason]) as EMF, an error log line with the reason code, and an
error answer of kind "model". Nothing is served until the model checks out.

A request that does not fit the model (the caller's error) is answered with an error of kind "client" and counted
in ClientErrors ([Stage], [Stage, Reason]); it is not a function error, so it never reaches the serving-errors
alarm (which rolls back): only unexpected failures do.

Served requests emit, as EMF in namespace "mlvault", with ModelVersion = the Lambda function version serving
(each published version pins one model, so each deployed model has its own metrics):
- Predictions (Count, per invocation), dimension sets [Stage] and [Stage, ModelVersion];
- each time the execution environment's drift window fills (mlvault.drift): MaxFeatureDrift (the largest
  feature PSI, the metric the drift alarm watches) and PredictionDrift (PSI of the predicted classes), same
  dimension sets, and FeatureDrift (PSI) per feature, dimension set [Stage, ModelVersion, Feature].
"""

from aws_lambda_powertools.metrics import MetricUnit

from mlvault.observability import emit, logger
from mlvault.observability import metrics as _metrics
from mlvault.serving import loader as serving
from mlvault.wiring import Dimension, Metric


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
    metrics = _metrics()
    metrics.add_metric(name=Metric.MODEL_ATTESTATION_FAILED, unit=MetricUnit.Count, value=1)
    metrics.add_dimension(name=Dimension.STAGE, value=err.stage or "unknown")
    metrics.add_dimensions(**{Dimension.STAGE: err.stage or "unknown", Dimension.REASON: err.reason})
    metrics.add_metadata(key="model_id", value=err.model_id)
    metrics.add_metadata(key="model_version", value=err.model_version)
    metrics.flush_metrics()


def _client_error(err: serving.InvalidRequest) -> None:
    logger.warning("request refused", extra={"reason": err.reason, "field": err.field, "detail": err.detail})
    emit(Metric.CLIENT_ERRORS, 1, {Dimension.REASON: err.reason})


def _observed(server: serving.Server, served: serving.ServedModel, outcome: serving.Outcome, version: str) -> None:
    stage = server.pin.stage
    metrics = _metrics()
    metrics.add_metric(name=Metric.PREDICTIONS, unit=MetricUnit.Count, value=outcome.predictions)
    for snapshot in outcome.drift:
        feature, value = snapshot.max_feature
        metrics.add_metric(name=Metric.MAX_FEATURE_DRIFT, unit=MetricUnit.NoUnit, value=value)
        metrics.add_metric(name=Metric.PREDICTION_DRIFT, unit=MetricUnit.NoUnit, value=snapshot.prediction)
        logger.info(
            "drift window",
            extra={"model_version": version, "rows": snapshot.rows, "max_feature": feature, "psi": snapshot.features},
        )
    metrics.add_dimension(name=Dimension.STAGE, value=stage)
    metrics.add_dimensions(**{Dimension.STAGE: stage, Dimension.MODEL_VERSION: version})
    metrics.add_metadata(key="model_id", value=served.model_id)
    metrics.add_metadata(key="model_digest", value=served.digest)
    metrics.flush_metrics()
    if outcome.drift:
        for name in outcome.drift[0].features:
            per_feature = _metrics()
            for snapshot in outcome.drift:
                per_feature.add_metric(name=Metric.FEATURE_DRIFT, unit=MetricUnit.NoUnit, value=snapshot.features[name])
            per_feature.add_dimension(name=Dimension.STAGE, value=stage)
            per_feature.add_dimension(name=Dimension.MODEL_VERSION, value=version)
            per_feature.add_dimension(name=Dimension.FEATURE, value=name)
            per_feature.add_metadata(key="model_id", value=served.model_id)
            per_feature.flush_metrics()


@logger.inject_lambda_context
def handler(event, context):
    try:
        server = serving.default_server()
        served = server.model()
    except serving.AttestationError as err:
        _refused(err)
        return serving.refusal_response(err)
    try:
        outcome = serving.serve_observed(server, served, serving.parse_rows(event))
    except serving.InvalidRequest as err:
        _client_error(err)
        return serving.error_response(err)
    _observed(server, served, outcome, context.function_version)
    return outcome.response

"""Serve function: {"rows": [{feature: value, ...}, ...]}
-> {"predictions": [...], "model": {"id", "digest", "version"}}, or {"error": {"code", "field", "message", "kind"}}
(the format: mlvault.serving.request_schema; docs/models.md), invoked directly or through the function URL (a POST
of that JSON in Lambda's HTTP event, payload format 2.0: 200, 400/405/415 for a client error, 503 for a refused
model; mlvault.serving.function_url).

Thin adapter (GUIDE.md section 2): the library attests the pinned model before anything is served
(mlvault.serving.loader). A refused model is loud on every invocation: the metric ModelAttestationFailed (namespace
"mlvault", dimension sets [Stage], [Stage, Reason], [Stage, Model], [Stage, Model, Reason]) as EMF, an error log
line with the reason code, and an error answer of kind "model". Nothing is served until the model checks out.

A request that does not fit the model (the caller's error) is answered with an error of kind "client" and counted
in ClientErrors (the same dimension sets); it is not a function error, so it never reaches the serving-errors alarm
(which rolls back): only unexpected failures do (a model answering outside its classes is one: ServingFailed).

Every metric also carries Model = the model this function serves (its bundled served-model facts), in dimension
sets of their own: the model's alarms watch [Stage, Model] (ModelAttestationFailed, MaxFeatureDrift).

Served requests emit, as EMF in namespace "mlvault", with ModelVersion = the Lambda function version serving
(each published version pins one model, so each deployed model has its own metrics):
- Predictions (Count, per invocation), dimension sets [Stage], [Stage, ModelVersion], [Stage, Model] and
  [Stage, Model, ModelVersion];
- each time the execution environment's drift window fills (mlvault.drift): MaxFeatureDrift (the largest
  feature PSI, the metric the drift alarm watches) and PredictionDrift (PSI of the predicted classes), same
  dimension sets, and FeatureDrift (PSI) per feature, dimension sets [Stage, ModelVersion, Feature] and
  [Stage, Model, ModelVersion, Feature].
"""

import functools
import time

from aws_lambda_powertools.metrics import MetricUnit

from mlvault.observability import EmfDocument, emit, logger, print_emf
from mlvault.observability import metrics as _metrics
from mlvault.serving import function_url
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
    stage, model = err.stage or "unknown", serving.metric_model()
    metrics = _metrics()
    metrics.add_metric(name=Metric.MODEL_ATTESTATION_FAILED, unit=MetricUnit.Count, value=1)
    metrics.add_dimension(name=Dimension.STAGE, value=stage)
    metrics.add_dimensions(**{Dimension.STAGE: stage, Dimension.REASON: err.reason})
    metrics.add_dimensions(**{Dimension.STAGE: stage, Dimension.MODEL: model})
    metrics.add_dimensions(**{Dimension.STAGE: stage, Dimension.MODEL: model, Dimension.REASON: err.reason})
    metrics.add_metadata(key="model_id", value=err.model_id)
    metrics.add_metadata(key="model_version", value=err.model_version)
    metrics.flush_metrics()


def _client_error(err: serving.InvalidRequest) -> None:
    logger.warning("request refused", extra={"reason": err.reason, "field": err.field, "detail": err.detail})
    model = serving.metric_model()
    reason, own = {Dimension.REASON: err.reason}, {Dimension.MODEL: model}
    emit(Metric.CLIENT_ERRORS, 1, reason, own, {**own, **reason})


def _observed(server: serving.Server, served: serving.ServedModel, outcome: serving.Outcome, version: str) -> None:
    stage, model = server.pin.stage, serving.metric_model()
    drift = outcome.drift
    for snapshot in drift:
        feature, _ = snapshot.max_feature
        logger.info(
            "drift window",
            extra={"model_version": version, "rows": snapshot.rows, "max_feature": feature, "psi": snapshot.features},
        )
    predictions, with_drift = _summary(stage, model, version, served.model_id, served.digest)
    if not drift:
        print_emf([predictions.line([[outcome.predictions]])])
        return
    # at most MAX_ROWS / DriftSettings.MIN_WINDOW_ROWS + 1 windows a request: within EMF's values per metric
    now = int(time.time() * 1000)  # one timestamp for the request's documents
    features = tuple(drift[0].features)
    lines = [
        with_drift.line([[outcome.predictions], [s.max_feature[1] for s in drift], [s.prediction for s in drift]], now),
        *(
            document.line([[s.features[name] for s in drift]], now)
            for name, document in zip(
                features, _per_feature(stage, model, version, served.model_id, features), strict=True
            )
        ),
    ]
    print_emf(lines)


@functools.lru_cache(maxsize=16)
def _summary(stage: str, model: str, version: str, model_id: str, digest: str) -> tuple[EmfDocument, EmfDocument]:
    """A request's document: Predictions; and with the drift of the windows it filled (MaxFeatureDrift,
    PredictionDrift). The same for every request of this version and model, but for the values."""
    dimension_sets = [
        {Dimension.STAGE: stage, Dimension.MODEL_VERSION: version},
        {Dimension.STAGE: stage, Dimension.MODEL: model},
        {Dimension.STAGE: stage, Dimension.MODEL: model, Dimension.MODEL_VERSION: version},
    ]
    metadata = {"model_id": model_id, "model_digest": digest}
    count = (Metric.PREDICTIONS, MetricUnit.Count)
    drift = [(Metric.MAX_FEATURE_DRIFT, MetricUnit.NoUnit), (Metric.PREDICTION_DRIFT, MetricUnit.NoUnit)]
    return (
        EmfDocument([count], {Dimension.STAGE: stage}, dimension_sets, metadata),
        EmfDocument([count, *drift], {Dimension.STAGE: stage}, dimension_sets, metadata),
    )


@functools.lru_cache(maxsize=16)
def _per_feature(stage: str, model: str, version: str, model_id: str, features: tuple[str, ...]) -> list[EmfDocument]:
    """Each feature's document: its FeatureDrift."""
    documents = []
    for feature in features:
        own = {Dimension.STAGE: stage, Dimension.MODEL_VERSION: version, Dimension.FEATURE: feature}
        documents.append(
            EmfDocument(
                [(Metric.FEATURE_DRIFT, MetricUnit.NoUnit)],
                own,
                [{Dimension.STAGE: stage, Dimension.MODEL: model, **own}],
                {"model_id": model_id},
            )
        )
    return documents


@logger.inject_lambda_context
def handler(event, context):
    http = function_url.is_http(event)
    try:
        server = serving.default_server()
        served = server.model()
    except serving.AttestationError as err:
        _refused(err)
        answer = serving.refusal_response(err)
        return function_url.response(function_url.REFUSED, answer) if http else answer
    try:
        rows = serving.parse_rows(function_url.request_of(event) if http else event)
        outcome = serving.serve_observed(server, served, rows)
    except serving.InvalidRequest as err:
        _client_error(err)
        answer = serving.error_response(err)
        return function_url.client_error(err, answer) if http else answer
    _observed(server, served, outcome, context.function_version)
    return function_url.response(function_url.OK, outcome.response) if http else outcome.response

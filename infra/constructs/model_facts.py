"""Each model's facts that decide trust, bundled into the signed code of the functions that act on them.

The pipeline, sign, deploy, rollback and revoke functions serve every model of the stage; what they must know about
each (its gates, its trainer's parameters or its job's split and code digest, the function that serves it, the
alarms that judge it, its deployment lock) is written by the signer into their zip before it is signed, never into
their environment: an `UpdateFunctionConfiguration` cannot lower a model's gates, drop an alarm from its canary or
point a rollback at another function. Three documents (paths and keys in mlvault.wiring):

- `Bundle.MODELS` (pipeline, sign): `{"<model>": {...}}` in the shape mlvault.training.specs parses;
- `Bundle.SERVING` (deploy, rollback, revoke): where each model is served, its alarms and lock (ServingFact);
- `Bundle.SERVED_MODEL` (each serving function, its own model only): ServedModelFact.

Values may be deploy-time tokens (a serving function's name, the code asset's bucket): the signer resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.model_settings import ENGINE_LAMBDA, ModelSettings
from infra.settings import ConfigError, StageSettings
from mlvault.wiring import SERVE_ALIAS, Bundle, ServedModelFact, ServingFact, deployment_lock


@dataclass(frozen=True)
class CodeAsset:
    """A sagemaker model's source asset as deployed: the bootstrap assets bucket and key, and its SHA-256."""

    bucket: str  # a token until deployment
    key: str
    sha256: str


@dataclass(frozen=True)
class ServingTarget:
    """Where one model is served and what judges it."""

    function_name: str  # a token until deployment
    rollback_alarms: tuple[str, ...]
    canary_alarms: tuple[str, ...]


def training_entry(model: ModelSettings, code: CodeAsset | None) -> dict[str, Any]:
    """One model as mlvault.training.specs.parse_spec reads it (snake_case, the runtime form of cdk.json's keys)."""
    entry: dict[str, Any] = {"dataset": model.dataset, "engine": model.engine, "gates": model.gates.to_json()}
    if model.engine == ENGINE_LAMBDA:
        assert model.training is not None
        return {**entry, "training": model.training.to_json()}
    job = model.job
    assert job is not None, f"model {model.name}: a sagemaker model has its job"
    assert code is not None, f"model {model.name}: a sagemaker model needs its code asset"
    return {
        **entry,
        "seed": job.seed,
        "heldout_fraction": job.heldout_fraction,
        "validation_fraction": job.validation_fraction,
        "code": {"bucket": code.bucket, "key": code.key, "sha256": code.sha256},
        "entry_point": job.entry_point,
        "image": job.image,
        "hyperparameters": dict(job.hyperparameters),
    }


def models_document(settings: StageSettings, code: dict[str, CodeAsset]) -> dict[str, Any]:
    """Bundle.MODELS: every model of the stage, with the code assets of its sagemaker models. Each entry is read
    back as the pipeline function reads it (mlvault.training.specs.parse_spec): a document the library would refuse
    fails synth, not the first run."""
    from mlvault.training.specs import parse_spec

    document = {m.name: training_entry(m, code.get(m.name)) for m in settings.models}
    for name, entry in document.items():
        try:
            parse_spec(name, entry)
        except ValueError as err:
            raise ConfigError(f"context key 'mlvault:stages.{settings.stage}.models.{name}': {err}") from None
    return document


def serving_document(settings: StageSettings, targets: dict[str, ServingTarget]) -> dict[str, Any]:
    """Bundle.SERVING: where each model is served, the alarms that judge it, its deployment lock."""
    return {
        ServingFact.STAGE: settings.stage,
        ServingFact.MODELS: {
            name: {
                ServingFact.FUNCTION: target.function_name,
                ServingFact.ALIAS: SERVE_ALIAS,
                ServingFact.ALARMS: {
                    ServingFact.ROLLBACK_ALARMS: list(target.rollback_alarms),
                    ServingFact.CANARY_ALARMS: list(target.canary_alarms),
                },
                ServingFact.LOCK: deployment_lock(name),
            }
            for name, target in sorted(targets.items())
        },
    }


def served_model_document(settings: StageSettings, model: ModelSettings) -> dict[str, Any]:
    """Bundle.SERVED_MODEL of the model's own serving function."""
    return {
        ServedModelFact.STAGE: settings.stage,
        ServedModelFact.MODEL: model.name,
        ServedModelFact.DATASET: model.dataset,
    }


def models_bundle(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Bundle.MODELS: document}


def serving_bundle(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Bundle.SERVING: document}


def served_model_bundle(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Bundle.SERVED_MODEL: document}

"""Default wiring of the model pipeline's domain objects from a function's environment (once per container)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import boto3

from mlvault.models.gates import Gates
from mlvault.models.pipeline import Pipeline, PipelineConfig
from mlvault.models.rollback import Rollback, RollbackConfig
from mlvault.models.rollout import Rollout, RolloutConfig, canary_from_json
from mlvault.models.trainer import TrainingParams
from mlvault.runtime import PipelineSettings, RollbackSettings, RolloutSettings, TriggerSettings


@cache
def default_pipeline() -> Pipeline:
    s = PipelineSettings.from_env()
    config = PipelineConfig(
        model_bucket=s.model_bucket,
        ledger_table=s.ledger_table,
        registry_table=s.registry_table,
        contracts_dir=Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / s.contracts_dir,
        signing_key_arn=s.signing_key_arn,
        gates=Gates.from_config(json.loads(s.gates_json)),
        params=TrainingParams(**json.loads(s.training_json)),
    )
    return Pipeline(s3=boto3.client("s3"), dynamodb=boto3.client("dynamodb"), kms=boto3.client("kms"), config=config)


@cache
def default_rollout() -> Rollout:
    s = RolloutSettings.from_env()
    config = RolloutConfig(
        function_name=s.serve_function,
        alias=s.serve_alias,
        signing_key_arn=s.signing_key_arn,
        canary=canary_from_json(s.canary_json),
        alarms=tuple(a for a in s.alarms.split(",") if a),
        registry_table=s.registry_table,
    )
    return Rollout(
        s3=boto3.client("s3"),
        kms=boto3.client("kms"),
        lambda_client=boto3.client("lambda"),
        cloudwatch=boto3.client("cloudwatch"),
        dynamodb=boto3.client("dynamodb"),
        config=config,
        stepfunctions=boto3.client("stepfunctions"),
    )


@cache
def default_rollback() -> Rollback:
    s = RollbackSettings.from_env()
    config = RollbackConfig(
        function_name=s.serve_function,
        alias=s.serve_alias,
        signing_key_arn=s.signing_key_arn,
        registry_table=s.registry_table,
        ledger_table=s.ledger_table,
        alert_topic_arn=s.alert_topic_arn,
        cooldown_seconds=s.cooldown_seconds,
    )
    return Rollback(
        s3=boto3.client("s3"),
        kms=boto3.client("kms"),
        lambda_client=boto3.client("lambda"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        dynamodb=boto3.client("dynamodb"),
        config=config,
    )


@cache
def trigger_settings() -> TriggerSettings:
    return TriggerSettings.from_env()

"""One name for each thing infra and the functions must agree on: environment variables, metrics and their
namespace and dimensions, event sources and detail types, tags, SSM parameters and the paths of files bundled
with a function's code.

infra/ writes these names into the templates; the library reads them at run time (mlvault.config for the
environment). Constants only, standard library only: infra imports this module without loading runtime code.
"""

from __future__ import annotations

NAMESPACE = "mlvault"  # CloudWatch namespace of every mlvault metric


class Env:
    """Environment variables of the functions (set by infra/, read once by mlvault.config)."""

    STAGE = "MLVAULT_STAGE"
    # ingest
    INGEST_BUCKET = "MLVAULT_INGEST_BUCKET"
    LAKE_BUCKET = "MLVAULT_LAKE_BUCKET"
    QUARANTINE_BUCKET = "MLVAULT_QUARANTINE_BUCKET"
    LEDGER_TABLE = "MLVAULT_LEDGER_TABLE"
    MAX_UPLOAD_BYTES = "MLVAULT_MAX_UPLOAD_BYTES"
    ALERT_TOPIC_ARN = "MLVAULT_ALERT_TOPIC_ARN"
    TRUST_FILE = "MLVAULT_TRUST_FILE"
    CONTRACTS_DIR = "MLVAULT_CONTRACTS_DIR"
    INGEST_QUEUE_URL = "MLVAULT_INGEST_QUEUE_URL"
    RECONCILE_DEADLINE_SECONDS = "MLVAULT_RECONCILE_DEADLINE_SECONDS"
    RECONCILE_MAX_REDRIVES = "MLVAULT_RECONCILE_MAX_REDRIVES"
    # models
    MODEL_BUCKET = "MLVAULT_MODEL_BUCKET"
    REGISTRY_TABLE = "MLVAULT_REGISTRY_TABLE"
    SIGNING_KEY_ARN = "MLVAULT_SIGNING_KEY_ARN"  # not read by the library: the key is in Bundle.ANCHORS
    MODEL_GATES = "MLVAULT_MODEL_GATES"
    TRAINING_PARAMS = "MLVAULT_TRAINING_PARAMS"
    SERVE_FUNCTION = "MLVAULT_SERVE_FUNCTION"
    SERVE_ALIAS = "MLVAULT_SERVE_ALIAS"
    CANARY_STEPS = "MLVAULT_CANARY_STEPS"
    SERVING_ALARMS = "MLVAULT_SERVING_ALARMS"  # not read by the library: the alarms are in Bundle.ANCHORS
    STATE_MACHINE_ARN = "MLVAULT_STATE_MACHINE_ARN"
    TRAIN_DATASETS = "MLVAULT_TRAIN_DATASETS"
    TRAIN_DEBOUNCE_SECONDS = "MLVAULT_TRAIN_DEBOUNCE_SECONDS"
    ROLLBACK_COOLDOWN_SECONDS = "MLVAULT_ROLLBACK_COOLDOWN_SECONDS"
    DRIFT_WINDOW_ROWS = "MLVAULT_DRIFT_WINDOW_ROWS"
    # the pins of a published serving version (written by the deploy step, never by infra)
    MODEL_ID = "MLVAULT_MODEL_ID"
    MODEL_KEY = "MLVAULT_MODEL_KEY"
    MODEL_VERSION = "MLVAULT_MODEL_VERSION"
    MODEL_DIGEST = "MLVAULT_MODEL_DIGEST"
    SIGNATURE_KEY = "MLVAULT_SIGNATURE_KEY"
    SIGNATURE_VERSION = "MLVAULT_SIGNATURE_VERSION"
    # Lambda's own: where the function's code (and what is bundled with it) is unpacked
    TASK_ROOT = "LAMBDA_TASK_ROOT"
    # Powertools
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"


class Metric:
    """Metric names in NAMESPACE (emitted as EMF by the functions, or put by the reconciler)."""

    VERDICTS = "Verdicts"  # one per ingest verdict; dimensions [Stage], [Stage, Status], [Stage, Reason]
    UNACCOUNTED = "Unaccounted"  # ingest versions past the deadline without a verdict
    UNANNOUNCED = "Unannounced"  # ledger records whose announcement is still pending after the reconciler's sweep
    MODEL_ATTESTATION_FAILED = "ModelAttestationFailed"  # serving refused its pinned model
    PREDICTIONS = "Predictions"
    MAX_FEATURE_DRIFT = "MaxFeatureDrift"  # the drift alarm's metric: the worst feature's PSI per window
    PREDICTION_DRIFT = "PredictionDrift"
    FEATURE_DRIFT = "FeatureDrift"
    CANARY_WEIGHT = "CanaryWeight"
    ROLLBACKS = "Rollbacks"
    CLIENT_ERRORS = "ClientErrors"  # requests refused as the caller's error; dimensions [Stage], [Stage, Reason]


class Dimension:
    STAGE = "Stage"
    STATUS = "Status"
    REASON = "Reason"
    MODEL_VERSION = "ModelVersion"
    FEATURE = "Feature"


class Source:
    """EventBridge sources of mlvault's events."""

    INGEST = "mlvault.ingest"
    MODELS = "mlvault.models"


class DetailType:
    UPLOAD_ACCEPTED = "Upload Accepted"
    UPLOAD_REJECTED = "Upload Rejected"
    UPLOAD_HELD = "Upload Held"
    MODEL_ROLLED_BACK = "Model Rolled Back"
    ROLLBACK_NOT_DONE = "Rollback Not Done"
    KEY_REVOKED = "Key Revoked"  # a producer key's revocation and its blast radius (mlvault producers revoke)
    PIPELINE_BLOCKED = "Model Pipeline Blocked"  # the model-signing key refused: signing or deployment stopped
    ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"  # AWS's own (source aws.cloudwatch)


class Tag:
    STAGE = "mlvault:stage"  # every resource of a stage
    VERDICT = "mlvault:verdict"  # on an ingest version once its verdict is recorded (lifecycle may expire it)
    VERDICT_RECORDED = "recorded"
    QUARANTINE_REASON = "mlvault-reason"  # on a quarantined copy: the reason code


def parameter_prefix(stage: str) -> str:
    """Where a stage's stacks publish the names of their resources (SSM), for the CLI to find them."""
    return f"/mlvault/{stage}/"


class Bundle:
    """Files bundled with a function's code (paths relative to its task root): reviewed files, covered by the
    code's signature."""

    TRUST_FILE = "trust/producers.json"
    CONTRACTS_DIR = "contracts"
    # The model-signing key (ARN and public key SHA-256) and mlvault's own alarm names, written into each signed
    # bundle at deploy time (mlvault.trust.anchors): {"stage", "model_signing_key": {"arn", "public_key_sha256"},
    # "alarms": {"rollback": [...], "canary": [...]}}
    ANCHORS = "trust/anchors.json"


class Anchor:
    """The keys of the trust anchors document (Bundle.ANCHORS), as infra asks the signer to write it:

        {"stage": "<stage>",
         "model_signing_key": {"arn": "<KMS key ARN>",
                               "public_key_sha256": "<hex SHA-256 of the key's SubjectPublicKeyInfo PEM>"},
         "alarms": {"rollback": ["<alarm name>", ...], "canary": ["<alarm name>", ...]}}

    `public_key_sha256` is added by the signer (it reads the public key from KMS when it signs the code), over the
    PEM as mlvault.attestation.openssf.kms_public_key_pem renders it. `rollback`: the alarms whose ALARM rolls
    serving back; `canary`: the alarms the deploy step checks between canary steps.
    """

    STAGE = "stage"
    MODEL_SIGNING_KEY = "model_signing_key"
    KEY_ARN = "arn"
    PUBLIC_KEY_SHA256 = "public_key_sha256"
    ALARMS = "alarms"
    ROLLBACK_ALARMS = "rollback"
    CANARY_ALARMS = "canary"


SERVE_ALIAS = "live"  # the serving function's alias that callers invoke

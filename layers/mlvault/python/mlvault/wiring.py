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
    CANARY_STEPS = "MLVAULT_CANARY_STEPS"
    SERVING_ALARMS = "MLVAULT_SERVING_ALARMS"  # not read by the library: the alarms are in Bundle.ANCHORS
    STATE_MACHINE_ARN = "MLVAULT_STATE_MACHINE_ARN"
    TRAIN_DATASETS = "MLVAULT_TRAIN_DATASETS"
    # the trigger: {"<model>": {"dataset": "<dataset>", "state_machine_arn": "<its pipeline's ARN>"}, ...}: which
    # pipelines an accepted batch of a dataset (or the schedule) starts. Starting a run decides no trust (the run
    # re-checks everything), so it is configuration; each model's facts that do decide trust are bundled (Bundle).
    MODEL_PIPELINES = "MLVAULT_MODEL_PIPELINES"
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
    MODEL = "Model"  # the model's name (cdk.json `models`): each model's serving alarms watch [Stage, Model]
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


def function_url_parameter(model: str) -> str:
    """The SSM parameter (under `parameter_prefix`) holding a model's function URL (its `live` alias's, AWS_IAM):
    what `mlvault predict --model NAME` signs its requests for."""
    return f"function-url/{model}"


def serve_function_parameter(model: str) -> str:
    """The SSM parameter (under `parameter_prefix`) holding the name of a model's serving function."""
    return f"serve-function/{model}"


def model_pipeline_parameter(model: str) -> str:
    """The SSM parameter (under `parameter_prefix`) holding the ARN of a model's pipeline state machine."""
    return f"model-pipeline/{model}"


def model_dataset_parameter(model: str) -> str:
    """The SSM parameter (under `parameter_prefix`) holding the dataset a model trains on."""
    return f"model-dataset/{model}"


class Bundle:
    """Files bundled with a function's code (paths relative to its task root): reviewed files, covered by the
    code's signature."""

    TRUST_FILE = "trust/producers.json"
    CONTRACTS_DIR = "contracts"
    # The model-signing key (ARN and public key SHA-256) and mlvault's own alarm names, written into each signed
    # bundle at deploy time (mlvault.trust.anchors): {"stage", "model_signing_key": {"arn", "public_key_sha256"},
    # "alarms": {"rollback": [...], "canary": [...]}}
    ANCHORS = "trust/anchors.json"
    # The stage's models as the pipeline and sign functions run them: {"<model>": {...}} in the shape
    # mlvault.training.specs parses (dataset, engine, gates, training | seed, heldout_fraction, validation_fraction,
    # code {bucket, key, sha256}, entry_point, image, hyperparameters). Gates decide trust: bundled, not configured.
    MODELS = "trust/models.json"
    # Where each model is served, for the functions that move serving (deploy, rollback, revoke): ServingFact.
    SERVING = "trust/serving.json"
    # The one model a serving function serves (in that function's bundle only): ServedModelFact.
    SERVED_MODEL = "trust/served-model.json"


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


class ServingFact:
    """The keys of the serving document (Bundle.SERVING), as infra asks the signer to write it:

        {"stage": "<stage>",
         "models": {"<model>": {"function": "<its serving function's name>", "alias": "live",
                                "alarms": {"rollback": ["<alarm name>", ...], "canary": ["<alarm name>", ...]},
                                "lock": "<its deployment lock's name>"}}}

    `alarms` are the model's own (errors on its `live` alias, refused models, feature drift): `rollback` the ones
    whose ALARM rolls that model's serving back, `canary` the ones its deploy step reads between canary steps. The
    anchors (Bundle.ANCHORS) keep every model's alarms together in their `alarms`, unchanged in shape.
    """

    STAGE = "stage"
    MODELS = "models"
    FUNCTION = "function"
    ALIAS = "alias"
    ALARMS = "alarms"
    ROLLBACK_ALARMS = "rollback"
    CANARY_ALARMS = "canary"
    LOCK = "lock"


class ServedModelFact:
    """The keys of a serving function's own document (Bundle.SERVED_MODEL):

        {"stage": "<stage>", "model": "<model>", "dataset": "<dataset>"}

    the model this function serves: a pinned model of another name is refused, and its metrics carry
    Dimension.MODEL = this name (the model's alarms watch [Stage, Model])."""

    STAGE = "stage"
    MODEL = "model"
    DATASET = "dataset"


def deployment_lock(model: str) -> str:
    """The name of a model's deployment lock in the registry (one deployment of a model at a time)."""
    return f"serving-{model}"


SERVE_ALIAS = "live"  # the serving function's alias that callers invoke

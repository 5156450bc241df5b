"""The stage's models (cdk.json `models`, docs/bring-your-own-model.md section 1), typed and validated at synth.

Each model has a name (its key), the dataset it trains on (which must have a contract), an engine and its gates:

- engine `lambda`: the built-in trainer inside the pipeline function (small data, the demo); its parameters in
  `training` (mlvault.training.params.TrainingParams). No SageMaker key may be given.
- engine `sagemaker`: the team's own code under `models/<dir>/`, run as a SageMaker training job (script mode):
  `source`, `entryPoint`, `image` (an ECR image URI in the stage's region), `instanceType` (an `ml.*` type),
  `instanceCount`, `maxRuntimeSeconds`, `heldoutFraction`; optionally `spot` (with `maxWaitSeconds`),
  `hyperparameters` (strings), `validationFraction`, `seed`. `training` may not be given.

A bad value fails synth with the key (`mlvault:stages.<stage>.models.<name>.<key>`) and what is allowed. The limits
are SageMaker's own (CreateTrainingJob, as botocore's service model states them): at most 100 hyperparameters,
names of at most 256 characters and values of at most 2,500; the training instance types the API accepts;
MaxRuntimeInSeconds and MaxWaitTimeInSeconds at most 28 days (the maximum SageMaker accepts; an account's default
quota may be lower); a training job name of at most 63 characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlvault.training.gates import Gates
    from mlvault.training.params import TrainingParams

ENGINE_LAMBDA = "lambda"
ENGINE_SAGEMAKER = "sagemaker"
ENGINES = (ENGINE_LAMBDA, ENGINE_SAGEMAKER)

# A model's name is in function, alarm, state machine, log group and training job names: lowercase letters and
# digits, no separators (so that no model's training-job prefix `mlvault-<stage>-<model>-` is another's).
MODEL_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ENTRY_POINT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\.py$")
# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>(:<tag>|@sha256:<digest>)
IMAGE_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"
)
INSTANCE_TYPE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.(?:[0-9]*x?large|medium|small|metal[a-z0-9-]*)$")
HYPERPARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

MAX_HYPERPARAMETERS = 100  # SageMaker: at most 100 hyperparameters per job
MAX_HYPERPARAMETER_NAME = 256  # SageMaker: each name at most 256 characters
MAX_HYPERPARAMETER_VALUE = 2500  # SageMaker: each value at most 2,500 characters
MAX_RUNTIME_SECONDS = 28 * 24 * 3600  # SageMaker: MaxRuntimeInSeconds / MaxWaitTimeInSeconds at most 28 days
MAX_INSTANCE_COUNT = 100
MAX_TRAINING_JOB_NAME = 63  # SageMaker: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
# A training job is named `mlvault-<stage>-<run id>`; a model's run ids are `<model>-<trigger>-<time>`, at most
# the model's name plus this many characters (`-manual-%Y%m%dT%H%M%S%f`, mlvault.training.trigger).
RUN_ID_TAIL = 29
# mlvault's own hyperparameters (the in-job verifier and script mode): no model may set these prefixes.
RESERVED_HYPERPARAMETER_PREFIXES = ("sagemaker_", "mlvault_")
# the ones every job gets (mlvault.training.specs job_hyperparameters): they count against SageMaker's 100
MLVAULT_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "mlvault_entry_point",
    "mlvault_inputs_sha256",
)
JOB_VERIFIER_FILE = "mlvault_job.py"  # shipped in every source asset beside the team's code; its name is taken

_SAGEMAKER_REQUIRED = (
    "source",
    "entryPoint",
    "image",
    "instanceType",
    "instanceCount",
    "maxRuntimeSeconds",
    "heldoutFraction",
)
_SAGEMAKER_OPTIONAL = ("spot", "maxWaitSeconds", "hyperparameters", "validationFraction", "seed")
_COMMON = ("dataset", "engine", "gates")
_ENGINE_KEYS = {
    ENGINE_LAMBDA: {"required": ("training",), "optional": ()},
    ENGINE_SAGEMAKER: {"required": _SAGEMAKER_REQUIRED, "optional": _SAGEMAKER_OPTIONAL},
}
_ALL_KEYS = (*_COMMON, "training", *_SAGEMAKER_REQUIRED, *_SAGEMAKER_OPTIONAL)


class ModelConfigError(ValueError):
    """A model's setting is missing or invalid; the message names the key (infra.settings raises ConfigError)."""


@dataclass(frozen=True)
class SageMakerJob:
    """What the sagemaker engine's training job runs and with which resources."""

    source: str  # relative to the repository: models/<dir>
    source_dir: Path  # where it was found (the repository's, or a test's root)
    entry_point: str  # the team's script in source
    image: str  # the framework image URI (in the stage's region)
    instance_type: str
    instance_count: int
    max_runtime_seconds: int
    spot: bool
    max_wait_seconds: int | None  # with spot: how long to wait for spot capacity and the job together
    hyperparameters: tuple[tuple[str, str], ...]  # sorted (name, value)
    heldout_fraction: float  # rows mlvault keeps for its own gates, never given to the job
    validation_fraction: float  # rows written to the `validation` channel (0: no such channel)
    seed: int  # the row split's seed

    @property
    def image_repository_arn(self) -> str:
        """The ECR repository the image is pulled from (for the training role's ECR permissions)."""
        match = IMAGE_URI.match(self.image)
        assert match is not None  # validated at parse time
        return f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{match['repository']}"


@dataclass(frozen=True)
class ModelSettings:
    name: str
    dataset: str
    engine: str
    gates: Gates
    training: TrainingParams | None = None  # engine lambda
    job: SageMakerJob | None = None  # engine sagemaker

    @property
    def scope_id(self) -> str:
        """The model's construct id: the first component of the logical ids of its own resources."""
        return self.name.capitalize()


def parse_models(
    base: str, value: Any, *, stage: str, region: str, contracts_dir: Path, root: Path
) -> tuple[ModelSettings, ...]:
    """`base` is the key of the models object (mlvault:stages.<stage>.models); models in name order."""
    if not isinstance(value, Mapping) or not value:
        raise ModelConfigError(f"context key '{base}' must be an object of models by name, got {value!r}")
    models = []
    for name in sorted(value):
        key = f"{base}.{name}"
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise ModelConfigError(
                f"context key '{key}': a model's name is 1-20 lowercase letters and digits starting with a letter "
                f"(it names functions, alarms and training jobs), got {name!r}"
            )
        models.append(_model(key, name, value[name], stage=stage, region=region, contracts=contracts_dir, root=root))
    return tuple(models)


def _model(key: str, name: str, raw: Any, *, stage: str, region: str, contracts: Path, root: Path) -> ModelSettings:
    if not isinstance(raw, Mapping):
        raise ModelConfigError(f"context key '{key}' must be an object of model settings, got {raw!r}")
    unknown = sorted(set(raw) - set(_ALL_KEYS))
    if unknown:
        raise ModelConfigError(
            f"context key '{key}' has unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(_ALL_KEYS)}"
        )
    missing = [k for k in _COMMON if k not in raw]
    if missing:
        raise ModelConfigError(f"context key '{key}' is missing setting(s): {', '.join(missing)}")
    engine = raw["engine"]
    if engine not in ENGINES:
        raise ModelConfigError(f"context key '{key}.engine' must be one of {', '.join(ENGINES)}; got {engine!r}")
    keys = _ENGINE_KEYS[engine]
    allowed = {*_COMMON, *keys["required"], *keys["optional"]}
    forbidden = sorted(set(raw) - allowed)
    if forbidden:
        raise ModelConfigError(
            f"context key '{key}' has setting(s) {', '.join(forbidden)} that engine {engine!r} does not take; "
            f"it takes: {', '.join(k for k in _ALL_KEYS if k in allowed)}"
        )
    missing = [k for k in keys["required"] if k not in raw]
    if missing:
        raise ModelConfigError(
            f"context key '{key}' is missing setting(s) engine {engine!r} requires: {', '.join(missing)}"
        )
    dataset = _dataset(f"{key}.dataset", raw["dataset"], contracts)
    gates = _gates(f"{key}.gates", raw["gates"])
    if engine == ENGINE_LAMBDA:
        return ModelSettings(name, dataset, engine, gates, training=_training(f"{key}.training", raw["training"]))
    job = _job(key, name, raw, stage=stage, region=region, root=root)
    return ModelSettings(name, dataset, engine, gates, job=job)


def _dataset(key: str, value: Any, contracts: Path) -> str:
    if not isinstance(value, str) or not DATASET_NAME.match(value):
        raise ModelConfigError(f"context key '{key}' must be a dataset name, got {value!r}")
    from mlvault.contracts.schema import ContractError, load_contract

    try:
        load_contract(contracts, value)
    except ContractError as err:
        raise ModelConfigError(f"context key '{key}': dataset {value!r} needs a valid data contract: {err}") from None
    return value


def _gates(key: str, value: Any) -> Gates:
    from mlvault.training.gates import Gates

    if not isinstance(value, Mapping):
        raise ModelConfigError(f"context key '{key}' must be an object of gate thresholds, got {value!r}")
    try:
        return Gates.from_config(value)
    except (TypeError, ValueError) as err:
        raise ModelConfigError(f"context key '{key}': {err}") from None


def _training(key: str, value: Any) -> TrainingParams:
    from mlvault.training.params import TrainingParams

    if not isinstance(value, Mapping):
        raise ModelConfigError(f"context key '{key}' must be an object of trainer parameters, got {value!r}")
    try:
        return TrainingParams(**value)
    except (TypeError, ValueError) as err:
        raise ModelConfigError(f"context key '{key}': {err}") from None


def _int(key: str, value: Any, low: int, high: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ModelConfigError(f"context key '{key}' must be an integer from {low} to {high}{why}, got {value!r}")
    return value


def _fraction(key: str, value: Any, *, zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelConfigError(f"context key '{key}' must be a number, got {value!r}")
    if not ((0 <= value < 1) if zero else (0 < value < 1)):
        raise ModelConfigError(f"context key '{key}' must be in {'[0, 1)' if zero else '(0, 1)'}, got {value!r}")
    return float(value)


def _job(key: str, name: str, raw: Mapping[str, Any], *, stage: str, region: str, root: Path) -> SageMakerJob:
    source = _source(f"{key}.source", raw["source"], root)
    entry_point = raw["entryPoint"]
    if not isinstance(entry_point, str) or not ENTRY_POINT.match(entry_point) or entry_point == JOB_VERIFIER_FILE:
        raise ModelConfigError(
            f"context key '{key}.entryPoint' must be a Python file name such as train.py (not {JOB_VERIFIER_FILE}, "
            f"mlvault's in-job verifier), got {entry_point!r}"
        )
    if not (root / source / entry_point).is_file():
        raise ModelConfigError(f"context key '{key}.entryPoint': {source}/{entry_point} does not exist")
    image = raw["image"]
    match = IMAGE_URI.match(image) if isinstance(image, str) else None
    if match is None:
        raise ModelConfigError(
            f"context key '{key}.image' must be an ECR image URI "
            f"(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>), got {image!r}"
        )
    if match["region"] != region:
        raise ModelConfigError(
            f"context key '{key}.image' is in region {match['region']}, the stage is in {region}: SageMaker pulls "
            "training images from the job's own region (the framework images have one URI per region)"
        )
    instance_type = raw["instanceType"]
    if not isinstance(instance_type, str) or not INSTANCE_TYPE.match(instance_type):
        raise ModelConfigError(
            f"context key '{key}.instanceType' must be a SageMaker ML instance type such as ml.m5.xlarge, "
            f"got {instance_type!r}"
        )
    known = training_instance_types()
    if known and instance_type not in known:
        raise ModelConfigError(
            f"context key '{key}.instanceType': {instance_type} is not a training instance type SageMaker's "
            f"CreateTrainingJob accepts (botocore's service model lists {len(known)}, e.g. ml.m5.xlarge, "
            "ml.c5.2xlarge, ml.g5.xlarge)"
        )
    instance_count = _int(f"{key}.instanceCount", raw["instanceCount"], 1, MAX_INSTANCE_COUNT)
    why = " (SageMaker's maximum: 28 days)"
    max_runtime = _int(f"{key}.maxRuntimeSeconds", raw["maxRuntimeSeconds"], 1, MAX_RUNTIME_SECONDS, why)
    spot = raw.get("spot", False)
    if not isinstance(spot, bool):
        raise ModelConfigError(f"context key '{key}.spot' must be true or false, got {spot!r}")
    max_wait = raw.get("maxWaitSeconds")
    if spot and max_wait is None:
        raise ModelConfigError(
            f"context key '{key}.maxWaitSeconds' is required with spot: how long SageMaker may wait for spot "
            "capacity and run the job together (at least maxRuntimeSeconds)"
        )
    if not spot and max_wait is not None:
        raise ModelConfigError(f"context key '{key}.maxWaitSeconds' is for spot training only; spot is false")
    if spot:
        max_wait = _int(f"{key}.maxWaitSeconds", max_wait, max_runtime, MAX_RUNTIME_SECONDS, why)
    hyperparameters = _hyperparameters(f"{key}.hyperparameters", raw.get("hyperparameters", {}))
    heldout = _fraction(f"{key}.heldoutFraction", raw["heldoutFraction"], zero=False)
    validation = _fraction(f"{key}.validationFraction", raw.get("validationFraction", 0), zero=True)
    if heldout + validation >= 1:
        raise ModelConfigError(
            f"context key '{key}.validationFraction': heldoutFraction {heldout} + validationFraction {validation} "
            "leave no rows to train on (their sum must be below 1)"
        )
    seed = _int(f"{key}.seed", raw.get("seed", 0), 0, 2**31 - 1)
    longest = len(f"mlvault-{stage}-{name}") + RUN_ID_TAIL
    if longest > MAX_TRAINING_JOB_NAME:
        raise ModelConfigError(
            f"context key '{key}': training jobs are named mlvault-{stage}-<run id>, up to {longest} characters for "
            f"model {name!r}; SageMaker allows {MAX_TRAINING_JOB_NAME}: choose a shorter model name"
        )
    return SageMakerJob(
        source=source,
        source_dir=root / source,
        entry_point=entry_point,
        image=image,
        instance_type=instance_type,
        instance_count=instance_count,
        max_runtime_seconds=max_runtime,
        spot=spot,
        max_wait_seconds=max_wait,
        hyperparameters=hyperparameters,
        heldout_fraction=heldout,
        validation_fraction=validation,
        seed=seed,
    )


@cache
def training_instance_types() -> frozenset[str]:
    """The ResourceConfig.InstanceType values of CreateTrainingJob, from botocore's SageMaker service model (data
    only: no client, no credentials); empty if botocore is not installed."""
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - botocore comes with the venv's boto3
        return frozenset()
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateTrainingJob").input_shape.members["ResourceConfig"].members["InstanceType"]
    return frozenset(shape.enum)


def _source(key: str, value: Any, root: Path) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 2 or parts[0] != "models" or not MODEL_NAME.match(parts[1]):
        raise ModelConfigError(
            f"context key '{key}' must be a directory models/<name> of this repository (the team's reviewed code), "
            f"got {value!r}"
        )
    if not (root / value).is_dir():
        raise ModelConfigError(f"context key '{key}': {value} is not a directory")
    if (root / value / JOB_VERIFIER_FILE).exists():
        raise ModelConfigError(
            f"context key '{key}': {value}/{JOB_VERIFIER_FILE} would be replaced by mlvault's in-job verifier of "
            "that name: rename it"
        )
    return value


def _hyperparameters(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ModelConfigError(f"context key '{key}' must be an object of strings by name, got {value!r}")
    room = MAX_HYPERPARAMETERS - len(MLVAULT_HYPERPARAMETERS)
    if len(value) > room:
        raise ModelConfigError(
            f"context key '{key}' has {len(value)} entries; SageMaker takes {MAX_HYPERPARAMETERS} hyperparameters "
            f"and mlvault sets {len(MLVAULT_HYPERPARAMETERS)} ({', '.join(MLVAULT_HYPERPARAMETERS)}), so at most {room}"
        )
    pairs = []
    for name, setting in sorted(value.items()):
        where = f"{key}.{name}"
        if not isinstance(name, str) or not HYPERPARAMETER_NAME.match(name) or len(name) > MAX_HYPERPARAMETER_NAME:
            raise ModelConfigError(
                f"context key '{where}': a hyperparameter name is a letter then letters, digits, '_' or '-' (at most "
                f"{MAX_HYPERPARAMETER_NAME} characters; the script receives it as --{name})"
            )
        if name.startswith(RESERVED_HYPERPARAMETER_PREFIXES):
            raise ModelConfigError(
                f"context key '{where}': names starting with {' or '.join(RESERVED_HYPERPARAMETER_PREFIXES)} are "
                "reserved for script mode and mlvault's in-job verifier"
            )
        if not isinstance(setting, str):
            raise ModelConfigError(
                f"context key '{where}' must be a string (SageMaker passes hyperparameters as strings), got {setting!r}"
            )
        if len(setting) > MAX_HYPERPARAMETER_VALUE:
            raise ModelConfigError(
                f"context key '{where}' is {len(setting)} characters; SageMaker allows {MAX_HYPERPARAMETER_VALUE}"
            )
        pairs.append((name, setting))
    return tuple(pairs)

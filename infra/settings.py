"""Typed, frozen stage settings loaded from the CDK context (cdk.json).

This is the only place that reads context (GUIDE.md 3.6: cdk.json -> typed settings -> construct props ->
env vars -> frozen runtime settings). A bad or missing value fails synth with a message naming the key and
what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from infra.model_settings import ModelConfigError, ModelSettings, parse_models

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = ROOT / "contracts"  # the reviewed data contracts, one per dataset
MODELS_ROOT = ROOT  # where a model's `source` (models/<name>) is found
STAGE_CONTEXT_KEY = "stage"
STAGES_CONTEXT_KEY = "mlvault:stages"

# Object Lock retention may be raised per stage in cdk.json but never configured below this floor.
RETENTION_FLOOR_DAYS = 7

# Enforce: Lambda refuses code no signing job of the stage's profile produced (every stage's default). Warn only
# records a warning: for a sandbox, never a default.
CODE_SIGNING_POLICIES = ("Warn", "Enforce")

_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
_QUALIFIER_RE = re.compile(r"^[a-z0-9]{1,10}$")


class ConfigError(ValueError):
    """A context value is missing or invalid. The message names the key and what is allowed."""


class CanaryStep(NamedTuple):
    """One canary step before 100%: route `percent` of the traffic to the new version, wait, check the alarms."""

    percent: int
    wait_seconds: int


@dataclass(frozen=True)
class DriftAlarm:
    """The feature drift alarm: PSI of the worst feature over `window_rows` rows of serving traffic."""

    threshold: float  # PSI above which a period breaches
    period_seconds: int  # a multiple of 60
    evaluation_periods: int
    window_rows: int  # rows per drift window in the serving function


@dataclass(frozen=True)
class StageSettings:
    stage: str
    region: str
    lake_retention_days: int
    quarantine_retention_days: int
    model_retention_days: int
    access_log_expiration_days: int
    ingest_verdict_expiration_days: int
    break_glass_role_name: str
    cdk_qualifier: str
    code_signing_policy: str
    reserved_concurrency: int | None
    log_retention_days: int
    max_upload_bytes: int
    trust_file: str
    models: tuple[ModelSettings, ...]  # by name (cdk.json `models`; infra/model_settings.py)
    train_debounce_seconds: int
    canary_steps: tuple[CanaryStep, ...]  # before 100%
    rollback_cooldown_seconds: int
    manual_approval: bool  # a human approves each signed model before it is deployed (task token)
    drift_alarm: DriftAlarm

    @property
    def prefix(self) -> str:
        """Name prefix for stacks and physical names of this stage."""
        return f"mlvault-{self.stage}"

    @property
    def log_group_prefix(self) -> str:
        """Where the stage's log groups are named (functions and state machine): the data key lets CloudWatch Logs
        encrypt these and no others."""
        return f"/mlvault/{self.stage}/"

    @property
    def train_datasets(self) -> tuple[str, ...]:
        """The datasets some model trains on: their accepted batches start its pipeline."""
        return tuple(sorted({m.dataset for m in self.models}))

    def model(self, name: str) -> ModelSettings:
        (found,) = [m for m in self.models if m.name == name]
        return found

    # The typed settings as the functions' environment carries them: the one place their JSON is written (the
    # functions parse it back with the library's own types, mlvault.config and mlvault.composition).

    @property
    def canary_steps_json(self) -> str:
        return json.dumps([{"percent": s.percent, "waitSeconds": s.wait_seconds} for s in self.canary_steps])


# key in cdk.json -> (field, parser)
def _int_at_least(minimum: int, why: str = ""):
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"context key '{key}' must be an integer >= {minimum}{why}, got {value!r}")
        if value < minimum:
            raise ConfigError(f"context key '{key}' must be an integer >= {minimum}{why}, got {value}")
        return value

    return parse


def _int_between(minimum: int, maximum: int, why: str = ""):
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ConfigError(f"context key '{key}' must be an integer from {minimum} to {maximum}{why}, got {value!r}")
        return value

    return parse


def _optional_int_at_least(minimum: int):
    inner = _int_at_least(minimum)

    def parse(key: str, value: Any) -> int | None:
        return None if value is None else inner(key, value)

    return parse


def _matching(pattern: re.Pattern[str], allowed: str):
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise ConfigError(f"context key '{key}' must be {allowed}, got {value!r}")
        return value

    return parse


def _one_of(choices: tuple[str, ...]):
    def parse(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"context key '{key}' must be one of {', '.join(choices)}; got {value!r}")
        return value

    return parse


_FLOOR_WHY = f" (the Object Lock retention floor is {RETENTION_FLOOR_DAYS} days)"

_FIELDS: dict[str, tuple[str, Any]] = {
    "region": ("region", _matching(_REGION_RE, "an AWS region name such as eu-west-1")),
    "lakeRetentionDays": ("lake_retention_days", _int_at_least(RETENTION_FLOOR_DAYS, _FLOOR_WHY)),
    "quarantineRetentionDays": ("quarantine_retention_days", _int_at_least(RETENTION_FLOOR_DAYS, _FLOOR_WHY)),
    "modelRetentionDays": ("model_retention_days", _int_at_least(RETENTION_FLOOR_DAYS, _FLOOR_WHY)),
    "accessLogExpirationDays": ("access_log_expiration_days", _int_at_least(90)),
    "ingestVerdictExpirationDays": ("ingest_verdict_expiration_days", _int_at_least(1)),
    "breakGlassRoleName": ("break_glass_role_name", _matching(_ROLE_NAME_RE, "an IAM role name")),
    "cdkQualifier": ("cdk_qualifier", _matching(_QUALIFIER_RE, "the CDK bootstrap qualifier (a-z0-9)")),
    "codeSigningPolicy": ("code_signing_policy", _one_of(CODE_SIGNING_POLICIES)),
    "reservedConcurrency": ("reserved_concurrency", _optional_int_at_least(1)),
    "logRetentionDays": ("log_retention_days", _int_at_least(1)),
    "maxUploadBytes": ("max_upload_bytes", _int_between(1, 5 * 1024**3, " (S3 copies at most 5 GiB in one request)")),
    "trustFile": (
        "trust_file",
        _matching(re.compile(r"^trust/[\w.-]+\.json$"), "a file under trust/ such as trust/dev.json"),
    ),
}


def _canary(key: str, value: Any) -> tuple[CanaryStep, ...]:
    steps = []
    for step in value if isinstance(value, list) else [None]:
        if not (
            isinstance(step, Mapping)
            and set(step) == {"percent", "waitSeconds"}
            and isinstance(step["percent"], int)
            and 0 < step["percent"] < 100
            and isinstance(step["waitSeconds"], int)
            and 0 <= step["waitSeconds"] <= 86400
        ):
            raise ConfigError(
                f'context key \'{key}\' must be a list of {{"percent": 1-99, "waitSeconds": 0-86400}}, got {value!r}'
            )
        steps.append(CanaryStep(percent=step["percent"], wait_seconds=step["waitSeconds"]))
    percents = [s.percent for s in steps]
    if percents != sorted(set(percents)):
        raise ConfigError(f"context key '{key}': percentages must increase, got {percents}")
    return tuple(steps)


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"context key '{key}' must be true or false, got {value!r}")
    return value


def _drift_alarm(key: str, value: Any) -> DriftAlarm:
    allowed = {"threshold": (int, float), "periodSeconds": int, "evaluationPeriods": int, "windowRows": int}
    if not isinstance(value, Mapping) or set(value) != set(allowed):
        raise ConfigError(f"context key '{key}' must be an object with {', '.join(allowed)}, got {value!r}")
    for name, kind in allowed.items():
        if isinstance(value[name], bool) or not isinstance(value[name], kind) or value[name] <= 0:
            raise ConfigError(f"context key '{key}.{name}' must be a positive number, got {value[name]!r}")
    if value["periodSeconds"] % 60:
        raise ConfigError(f"context key '{key}.periodSeconds' must be a multiple of 60, got {value['periodSeconds']}")
    if value["windowRows"] < 20:
        raise ConfigError(f"context key '{key}.windowRows' must be at least 20, got {value['windowRows']}")
    return DriftAlarm(
        threshold=value["threshold"],
        period_seconds=value["periodSeconds"],
        evaluation_periods=value["evaluationPeriods"],
        window_rows=value["windowRows"],
    )


_FIELDS.update(
    {
        "models": ("models", None),  # parsed with the stage's name and region (parse_stage)
        "trainDebounceSeconds": ("train_debounce_seconds", _int_between(0, 86400)),
        "canarySteps": ("canary_steps", _canary),
        "rollbackCooldownSeconds": ("rollback_cooldown_seconds", _int_between(0, 86400)),
        "manualApproval": ("manual_approval", _boolean),
        "driftAlarm": ("drift_alarm", _drift_alarm),
    }
)

# Settings that may be omitted (CDK drops null context values, so "absent" is how a stage says "none").
_OPTIONAL = {"reservedConcurrency"}


def parse_stage(stage: str, raw: Any) -> StageSettings:
    """Validate one stage's mapping from cdk.json into settings. Unknown keys are errors (typos)."""
    base = f"{STAGES_CONTEXT_KEY}.{stage}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"context key '{base}' must be an object of stage settings, got {raw!r}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"context key '{base}' has unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}"
        )
    missing = [k for k in _FIELDS if k not in raw and k not in _OPTIONAL]
    if missing:
        raise ConfigError(f"context key '{base}' is missing setting(s): {', '.join(missing)}")
    values = {
        field: parse(f"{base}.{key}", raw.get(key)) for key, (field, parse) in _FIELDS.items() if parse is not None
    }
    try:
        values["models"] = parse_models(
            f"{base}.models",
            raw["models"],
            stage=stage,
            region=values["region"],
            contracts_dir=CONTRACTS_DIR,
            root=MODELS_ROOT,
        )
    except ModelConfigError as err:
        raise ConfigError(str(err)) from None
    settings = StageSettings(stage=stage, **values)
    _check_canary_sees_drift(base, settings)
    _check_trust_file(f"{base}.trustFile", settings.trust_file)
    return settings


def _check_canary_sees_drift(base: str, settings: StageSettings) -> None:
    """Each canary step must wait at least the drift alarm's evaluation window (periodSeconds x evaluationPeriods):
    the alarms are checked after the wait, and an alarm cannot have seen drift in less time than it evaluates."""
    drift = settings.drift_alarm
    window = drift.period_seconds * drift.evaluation_periods
    for index, step in enumerate(settings.canary_steps):
        if step.wait_seconds < window:
            raise ConfigError(
                f"context key '{base}.canarySteps[{index}].waitSeconds' is {step.wait_seconds} s, shorter than the "
                f"drift alarm's evaluation window ('{base}.driftAlarm.periodSeconds' {drift.period_seconds} s x "
                f"'{base}.driftAlarm.evaluationPeriods' {drift.evaluation_periods} = {window} s): the alarms checked "
                f"after that wait could never have seen drift. Wait at least {window} s."
            )


def _check_trust_file(key: str, relative: str) -> None:
    """The stage's trust registry must exist and be valid, and every dataset a producer is trusted for must have a
    data contract (contracts/<dataset>.json; whether the contract itself is valid, infra.assembly.check_contracts
    says): a typo in it fails synth, not the first upload (which would be refused NO_CONTRACT)."""
    from mlvault.trust.producers import TrustRegistryError, load_registry

    path = ROOT / relative
    if not path.is_file():
        raise ConfigError(f"context key '{key}' names {relative}, which does not exist")
    try:
        registry = load_registry(path)
    except TrustRegistryError as err:
        raise ConfigError(f"context key '{key}': {err}") from None
    for producer in registry.producers.values():
        for dataset in producer.datasets:
            contract = CONTRACTS_DIR / f"{dataset}.json"
            if not contract.is_file():
                raise ConfigError(
                    f"context key '{key}': {relative}: producer {producer.id!r} names dataset {dataset!r}, which has "
                    f"no data contract ({contract.relative_to(CONTRACTS_DIR.parent)} does not exist): add the "
                    "contract or take the dataset out of the entry"
                )


def load_settings(context: Mapping[str, Any] | Any) -> StageSettings:
    """Load the selected stage (context `stage`, default from cdk.json) from a mapping or a CDK node."""
    get = context.get if isinstance(context, Mapping) else context.try_get_context
    stages = get(STAGES_CONTEXT_KEY)
    if not isinstance(stages, Mapping) or not stages:
        raise ConfigError(f"context key '{STAGES_CONTEXT_KEY}' must be an object of stages (see cdk.json)")
    stage = get(STAGE_CONTEXT_KEY)
    if stage not in stages:
        raise ConfigError(
            f"context key '{STAGE_CONTEXT_KEY}' must be one of {', '.join(sorted(stages))}; got {stage!r}"
        )
    return parse_stage(stage, stages[stage])

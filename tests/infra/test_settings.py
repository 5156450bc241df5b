"""Configuration: stages from cdk.json into frozen settings; bad values name the key and what is allowed."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from infra.settings import RETENTION_FLOOR_DAYS, ConfigError, load_settings
from tests.conftest import ROOT, cdk_context


def with_dev(**changes):
    context = cdk_context()
    context["mlvault:stages"]["dev"].update(changes)
    return context


def test_loads_the_default_stage_from_cdk_json():
    settings = load_settings(cdk_context())
    assert settings.stage == "dev"
    assert settings.region == "eu-west-1"
    assert settings.lake_retention_days >= RETENTION_FLOOR_DAYS
    assert settings.reserved_concurrency is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.stage = "prod"  # type: ignore[misc]


def test_drift_and_canary_are_typed():
    """(Each model's training parameters and gates: tests/infra/test_model_settings.py.)"""
    settings = load_settings(cdk_context())
    dev = cdk_context()["mlvault:stages"]["dev"]
    assert settings.drift_alarm.window_rows == dev["driftAlarm"]["windowRows"]
    assert settings.drift_alarm.period_seconds == dev["driftAlarm"]["periodSeconds"]
    assert [(s.percent, s.wait_seconds) for s in settings.canary_steps] == [
        (s["percent"], s["waitSeconds"]) for s in dev["canarySteps"]
    ]
    # the functions' environment: the library's own JSON of the typed values, read back to the same values
    assert [(s["percent"], s["waitSeconds"]) for s in json.loads(settings.canary_steps_json)] == [
        tuple(s) for s in settings.canary_steps
    ]


def test_selects_a_stage_with_context_stage():
    assert load_settings(cdk_context(stage="prod")).stage == "prod"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (cdk_context(stage="staging"), "context key 'stage' must be one of dev, prod; got 'staging'"),
        (with_dev(lakeRetentionDays=3), "'mlvault:stages.dev.lakeRetentionDays' must be an integer >= 7"),
        (with_dev(modelRetentionDays="30"), "'mlvault:stages.dev.modelRetentionDays' must be an integer >= 7"),
        (with_dev(region="Europe"), "'mlvault:stages.dev.region' must be an AWS region name"),
        (with_dev(codeSigningPolicy="Audit"), "'mlvault:stages.dev.codeSigningPolicy' must be one of Warn, Enforce"),
        (
            with_dev(canarySteps=[{"percent": 10, "waitSeconds": 120}, {"percent": 50, "waitSeconds": 2}]),
            "'mlvault:stages.dev.canarySteps[1].waitSeconds' is 2 s, shorter than the drift alarm's evaluation "
            "window ('mlvault:stages.dev.driftAlarm.periodSeconds' 60 s x "
            "'mlvault:stages.dev.driftAlarm.evaluationPeriods' 2 = 120 s)",
        ),
        (with_dev(lakeRetentionDay=30), "unknown setting(s) lakeRetentionDay"),
        (with_dev(reservedConcurrency=0), "'mlvault:stages.dev.reservedConcurrency' must be an integer >= 1"),
        (with_dev(maxUploadBytes=6 * 1024**3), "maxUploadBytes' must be an integer from 1 to 5368709120"),
        (with_dev(trustFile="/etc/passwd"), "trustFile' must be a file under trust/"),
        (with_dev(trustFile="trust/missing.json"), "names trust/missing.json, which does not exist"),
        (
            with_dev(driftAlarm={"threshold": 0.2, "periodSeconds": 60, "evaluationPeriods": 2, "windowRows": 5}),
            "'mlvault:stages.dev.driftAlarm.windowRows' must be at least 20",
        ),
    ],
)
def test_bad_values_fail_with_the_key_and_allowed_values(context, message):
    with pytest.raises(ConfigError) as err:
        load_settings(context)
    assert message in str(err.value)


def test_missing_setting_is_named():
    context = cdk_context()
    del context["mlvault:stages"]["dev"]["breakGlassRoleName"]
    with pytest.raises(ConfigError, match="missing setting\\(s\\): breakGlassRoleName"):
        load_settings(context)


def test_synth_fails_with_the_message_on_a_bad_value():
    """The app entry point (what `cdk synth` runs) exits non-zero and names the key."""
    context = with_dev(lakeRetentionDays=1)
    env = {"CDK_CONTEXT_JSON": json.dumps(context), "PATH": "/usr/bin:/bin", "CDK_OUTDIR": "/tmp/mlvault-bad-synth"}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "lakeRetentionDays' must be an integer >= 7" in result.stderr


def test_a_typo_in_a_data_contract_fails_synth(tmp_path, monkeypatch):
    import infra.assembly

    (tmp_path / "contracts").mkdir()
    broken = json.loads((ROOT / "contracts/iris.json").read_text()) | {"colums": []}
    (tmp_path / "contracts/iris.json").write_text(json.dumps(broken))
    monkeypatch.setattr(infra.assembly, "CONTRACTS_DIR", tmp_path / "contracts")
    with pytest.raises(ConfigError, match=r"data contract: .*iris.json: unknown field\(s\) \['colums'\]"):
        infra.assembly.check_contracts()


def test_enforce_is_every_stages_code_signing_policy_and_warn_is_never_a_default():
    """Enforce in every stage of cdk.json; Warn stays selectable (a sandbox) but only by saying so: the setting has
    no default, a stage without it fails synth."""
    stages = cdk_context()["mlvault:stages"]
    assert {name: stage["codeSigningPolicy"] for name, stage in stages.items()} == {n: "Enforce" for n in stages}
    for stage in stages:
        assert load_settings(cdk_context(stage=stage)).code_signing_policy == "Enforce"
    assert load_settings(with_dev(codeSigningPolicy="Warn")).code_signing_policy == "Warn"
    context = cdk_context()
    del context["mlvault:stages"]["dev"]["codeSigningPolicy"]
    with pytest.raises(ConfigError, match="missing setting\\(s\\): codeSigningPolicy"):
        load_settings(context)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_canary_wait_covers_the_drift_alarms_window(stage):
    settings = load_settings(cdk_context(stage=stage))
    window = settings.drift_alarm.period_seconds * settings.drift_alarm.evaluation_periods
    assert all(step.wait_seconds >= window for step in settings.canary_steps)


def test_a_canary_shorter_than_the_drift_window_fails_synth_naming_the_keys():
    context = with_dev(driftAlarm={"threshold": 0.2, "periodSeconds": 300, "evaluationPeriods": 2, "windowRows": 200})
    with pytest.raises(ConfigError) as err:
        load_settings(context)
    message = str(err.value)
    assert "'mlvault:stages.dev.canarySteps[0].waitSeconds' is 120 s" in message
    assert "driftAlarm.periodSeconds' 300 s" in message
    assert "= 600 s" in message


def test_a_trust_entry_naming_a_dataset_without_a_contract_fails_synth_naming_it(tmp_path, monkeypatch):
    """A producer trusted for a dataset that has no data contract could only ever be refused (NO_CONTRACT): synth
    refuses the entry, naming the producer, the dataset and the trust file, before anything is synthesized."""
    import infra.settings

    registry = json.loads((ROOT / "trust/dev.json").read_text())
    registry["producers"]["globex"]["datasets"].append("weather")
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust/dev.json").write_text(json.dumps(registry))
    monkeypatch.setattr(infra.settings, "ROOT", tmp_path)  # the trust file is read from there; contracts/ stays ours
    with pytest.raises(ConfigError) as err:
        load_settings(cdk_context())
    assert str(err.value) == (
        "context key 'mlvault:stages.dev.trustFile': trust/dev.json: producer 'globex' names dataset 'weather', "
        "which has no data contract (contracts/weather.json does not exist): add the contract or take the dataset "
        "out of the entry"
    )


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_dataset_a_stage_trusts_a_producer_for_has_a_contract(stage):
    settings = load_settings(cdk_context(stage=stage))  # the check passes on the repository's own registries
    registry = json.loads((ROOT / settings.trust_file).read_text())
    for entry in registry["producers"].values():
        assert all((ROOT / "contracts" / f"{d}.json").is_file() for d in entry["datasets"])

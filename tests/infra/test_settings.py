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
        (with_dev(codeSigningPolicy="Enforce"), "codeSigningPolicy' is 'Enforce'"),
        (with_dev(lakeRetentionDay=30), "unknown setting(s) lakeRetentionDay"),
        (with_dev(reservedConcurrency=0), "'mlvault:stages.dev.reservedConcurrency' must be an integer >= 1"),
        (with_dev(maxUploadBytes=6 * 1024**3), "maxUploadBytes' must be an integer from 1 to 5368709120"),
        (with_dev(trustFile="/etc/passwd"), "trustFile' must be a file under trust/"),
        (with_dev(trustFile="trust/missing.json"), "names trust/missing.json, which does not exist"),
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
    import infra.app

    (tmp_path / "contracts").mkdir()
    broken = json.loads((ROOT / "contracts/iris.json").read_text()) | {"colums": []}
    (tmp_path / "contracts/iris.json").write_text(json.dumps(broken))
    monkeypatch.setattr(infra.app, "ROOT", tmp_path)
    with pytest.raises(ConfigError, match=r"data contract: .*iris.json: unknown field\(s\) \['colums'\]"):
        infra.app.check_contracts()

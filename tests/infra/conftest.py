"""The infra tests' second app: cdk.json's stage plus a sagemaker model `team` of a scratch repository root, with
every option of the engine on (spot, a validation channel, hyperparameters), so that the engine's variations are
tested whatever models cdk.json configures. Synthesized once per test run, like the main app (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, Synthesized, cdk_context

TEAM_IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
TEAM = {
    "dataset": "loans",
    "engine": "sagemaker",
    "source": "models/team",
    "entryPoint": "train.py",
    "image": TEAM_IMAGE,
    "instanceType": "ml.c5.2xlarge",
    "instanceCount": 2,
    "maxRuntimeSeconds": 5400,
    "spot": True,
    "maxWaitSeconds": 10800,
    "hyperparameters": {"n_estimators": "150", "learning_rate": "0.1"},
    "heldoutFraction": 0.2,
    "validationFraction": 0.1,
    "seed": 3,
    "gates": {"min_accuracy": 0.6, "max_artifact_bytes": 8388608},
}


def team_root(root: Path) -> Path:
    """A repository root with the repository's models (cdk.json's) and the scratch model `team`."""
    if (ROOT / "models").is_dir():
        shutil.copytree(ROOT / "models", root / "models", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "models" / "team").mkdir(parents=True, exist_ok=True)
    (root / "models" / "team" / "train.py").write_text("import sys\nprint('training', sys.argv)\n")
    (root / "models" / "team" / "requirements.txt").write_text("scikit-learn\n")
    return root


@pytest.fixture(scope="session")
def team_app(tmp_path_factory) -> Synthesized:
    from aws_cdk import App

    import infra.settings
    from infra.assembly import build
    from infra.policy.rules import RuleContext, assembly_templates, check_assembly

    root = team_root(tmp_path_factory.mktemp("team-repository"))
    outdir = tmp_path_factory.mktemp("team-cdk.out")
    context = cdk_context()
    context["mlvault:stages"]["dev"]["models"]["team"] = TEAM
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infra.settings, "MODELS_ROOT", root)
        app = App(context=context, outdir=str(outdir))
        built = build(app)
        assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    violations = check_assembly(assembly, RuleContext.of(built.settings))
    assert not violations, violations  # our own rules hold for the engine's every option too
    return Synthesized(
        outdir=outdir,
        templates=assembly_templates(assembly),
        settings=built.settings,
        validation_report=json.loads((outdir / "validation-report.json").read_text()),
    )

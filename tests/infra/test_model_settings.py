"""The stage's models (cdk.json `models`): typed per engine, every bad value refused at synth with its key."""

from __future__ import annotations

import copy

import pytest

import infra.settings
from infra.model_settings import ENGINE_LAMBDA, ENGINE_SAGEMAKER, RUN_ID_TAIL
from infra.settings import ConfigError, load_settings
from tests.conftest import cdk_context

IMAGE = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
BASE = "mlvault:stages.dev.models"


def sagemaker_model(**changes):
    model = {
        "dataset": "loans",
        "engine": "sagemaker",
        "source": "models/team",
        "entryPoint": "train.py",
        "image": IMAGE,
        "instanceType": "ml.m5.xlarge",
        "instanceCount": 1,
        "maxRuntimeSeconds": 3600,
        "heldoutFraction": 0.2,
        "gates": {"min_accuracy": 0.6},
    }
    model.update(changes)
    return {k: v for k, v in model.items() if v is not None}


@pytest.fixture
def team_root(tmp_path, monkeypatch):
    """A repository root with the team's models/team/train.py (models are resolved against MODELS_ROOT)."""
    (tmp_path / "models" / "team").mkdir(parents=True)
    (tmp_path / "models" / "team" / "train.py").write_text("print('training')\n")
    monkeypatch.setattr(infra.settings, "MODELS_ROOT", tmp_path)
    return tmp_path


def with_models(models, stage="dev"):
    context = cdk_context(stage=stage)
    context["mlvault:stages"][stage]["models"] = models
    return context


def iris(**changes):
    model = copy.deepcopy(cdk_context()["mlvault:stages"]["dev"]["models"]["iris"])
    model.update(changes)
    return {k: v for k, v in model.items() if v is not None}


def test_each_stage_has_the_lambda_model_iris_with_todays_parameters():
    for stage in ("dev", "prod"):
        settings = load_settings(cdk_context(stage=stage))
        model = settings.model("iris")
        assert (model.dataset, model.engine) == ("iris", ENGINE_LAMBDA)
        assert model.training.seed == 1
        assert model.training.max_rows == 200_000
        assert model.job is None
        assert "iris" in settings.train_datasets
    assert load_settings(cdk_context()).model("iris").gates.min_accuracy == 0.85
    assert load_settings(cdk_context(stage="prod")).model("iris").gates.min_accuracy == 0.9


def test_a_sagemaker_model_is_typed(team_root):
    settings = load_settings(
        with_models(
            {
                "iris": iris(),
                "team": sagemaker_model(
                    spot=True,
                    maxWaitSeconds=7200,
                    hyperparameters={"n_estimators": "200", "max_depth": "3"},
                    validationFraction=0.1,
                    seed=7,
                ),
            }
        )
    )
    model = settings.model("team")
    assert model.engine == ENGINE_SAGEMAKER
    assert model.training is None
    job = model.job
    assert (job.source, job.entry_point, job.image) == ("models/team", "train.py", IMAGE)
    assert (job.instance_type, job.instance_count, job.max_runtime_seconds) == ("ml.m5.xlarge", 1, 3600)
    assert (job.spot, job.max_wait_seconds) == (True, 7200)
    assert job.hyperparameters == (("max_depth", "3"), ("n_estimators", "200"))
    assert (job.heldout_fraction, job.validation_fraction, job.seed) == (0.2, 0.1, 7)
    assert job.image_repository_arn == "arn:aws:ecr:eu-west-1:141502667606:repository/sagemaker-scikit-learn"
    assert settings.train_datasets == ("iris", "loans")
    assert [m.name for m in settings.models] == ["iris", "team"]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ({}, f"'{BASE}' must be an object of models by name"),
        ({"Iris": iris()}, f"'{BASE}.Iris': a model's name is 1-20 lowercase letters and digits"),
        ({"iris-2": iris()}, f"'{BASE}.iris-2': a model's name"),
        ({"iris": iris(dataset="nope")}, f"'{BASE}.iris.dataset': dataset 'nope' needs a valid data contract"),
        ({"iris": iris(engine="ec2")}, f"'{BASE}.iris.engine' must be one of lambda, sagemaker; got 'ec2'"),
        ({"iris": iris(gates=None)}, f"'{BASE}.iris' is missing setting(s): gates"),
        ({"iris": iris(gates={"min_accuracy": 2})}, f"'{BASE}.iris.gates': gates: min_accuracy must be"),
        ({"iris": iris(gates={"min_acuracy": 0.9})}, f"'{BASE}.iris.gates': gates: unknown setting(s)"),
        ({"iris": iris(training={"epochs": 0})}, f"'{BASE}.iris.training': epochs must be a positive integer"),
        ({"iris": iris(training=[1])}, f"'{BASE}.iris.training' must be an object of trainer parameters"),
        ({"iris": iris(training=None)}, f"'{BASE}.iris' is missing setting(s) engine 'lambda' requires: training"),
        (
            {"iris": iris(image=IMAGE)},
            f"'{BASE}.iris' has setting(s) image that engine 'lambda' does not take",
        ),
        ({"iris": iris(imgae=IMAGE)}, f"'{BASE}.iris' has unknown setting(s) imgae"),
        ({"team": sagemaker_model(training={"seed": 1})}, "setting(s) training that engine 'sagemaker' does not take"),
        (
            {"team": sagemaker_model(image=None)},
            f"'{BASE}.team' is missing setting(s) engine 'sagemaker' requires: image",
        ),
        ({"team": sagemaker_model(source="models/other")}, f"'{BASE}.team.source': models/other is not a directory"),
        ({"team": sagemaker_model(source="/etc")}, f"'{BASE}.team.source' must be a directory models/<name>"),
        ({"team": sagemaker_model(source="models/../x")}, f"'{BASE}.team.source' must be a directory models/<name>"),
        ({"team": sagemaker_model(entryPoint="main.py")}, f"'{BASE}.team.entryPoint': models/team/main.py does not"),
        ({"team": sagemaker_model(entryPoint="mlvault_job.py")}, f"'{BASE}.team.entryPoint' must be a Python file"),
        ({"team": sagemaker_model(entryPoint="../x.py")}, f"'{BASE}.team.entryPoint' must be a Python file"),
        ({"team": sagemaker_model(image="sagemaker-scikit-learn:1.2")}, f"'{BASE}.team.image' must be an ECR image"),
        (
            {"team": sagemaker_model(image=IMAGE.replace("eu-west-1", "us-east-1"))},
            f"'{BASE}.team.image' is in region us-east-1, the stage is in eu-west-1",
        ),
        ({"team": sagemaker_model(instanceType="m5.xlarge")}, f"'{BASE}.team.instanceType' must be a SageMaker ML"),
        ({"team": sagemaker_model(instanceType="ml.m5")}, f"'{BASE}.team.instanceType' must be a SageMaker ML"),
        ({"team": sagemaker_model(instanceCount=0)}, f"'{BASE}.team.instanceCount' must be an integer from 1 to 100"),
        ({"team": sagemaker_model(instanceCount="1")}, f"'{BASE}.team.instanceCount' must be an integer"),
        ({"team": sagemaker_model(maxRuntimeSeconds=0)}, f"'{BASE}.team.maxRuntimeSeconds' must be an integer from 1"),
        (
            {"team": sagemaker_model(maxRuntimeSeconds=28 * 86400 + 1)},
            f"'{BASE}.team.maxRuntimeSeconds' must be an integer from 1 to 2419200 (SageMaker's maximum: 28 days)",
        ),
        ({"team": sagemaker_model(spot="yes")}, f"'{BASE}.team.spot' must be true or false"),
        ({"team": sagemaker_model(spot=True)}, f"'{BASE}.team.maxWaitSeconds' is required with spot"),
        ({"team": sagemaker_model(maxWaitSeconds=7200)}, f"'{BASE}.team.maxWaitSeconds' is for spot training only"),
        (
            {"team": sagemaker_model(spot=True, maxWaitSeconds=60)},
            f"'{BASE}.team.maxWaitSeconds' must be an integer from 3600 to 2419200",
        ),
        ({"team": sagemaker_model(hyperparameters=["a"])}, f"'{BASE}.team.hyperparameters' must be an object"),
        ({"team": sagemaker_model(hyperparameters={"depth": 3})}, f"'{BASE}.team.hyperparameters.depth' must be a"),
        (
            {"team": sagemaker_model(hyperparameters={"depth": "x" * 2501})},
            f"'{BASE}.team.hyperparameters.depth' is 2501 characters; SageMaker allows 2500",
        ),
        (
            {"team": sagemaker_model(hyperparameters={"d" * 257: "1"})},
            f"'{BASE}.team.hyperparameters.{'d' * 257}': a hyperparameter name is a letter",
        ),
        (
            {"team": sagemaker_model(instanceType="ml.m5.3xlarge")},
            f"'{BASE}.team.instanceType': ml.m5.3xlarge is not a training instance type SageMaker's",
        ),
        (
            {"team": sagemaker_model(hyperparameters={"sagemaker_program": "evil.py"})},
            f"'{BASE}.team.hyperparameters.sagemaker_program': names starting with sagemaker_ or mlvault_",
        ),
        (
            {"team": sagemaker_model(hyperparameters={"mlvault_entry_point": "evil.py"})},
            f"'{BASE}.team.hyperparameters.mlvault_entry_point': names starting with",
        ),
        (
            {"team": sagemaker_model(hyperparameters={"--x": "1"})},
            f"'{BASE}.team.hyperparameters.--x': a hyperparameter name is a letter",
        ),
        (
            {"team": sagemaker_model(hyperparameters={f"h{i}": "1" for i in range(97)})},
            f"'{BASE}.team.hyperparameters' has 97 entries; SageMaker takes 100 hyperparameters and mlvault sets 4",
        ),
        ({"team": sagemaker_model(heldoutFraction=0)}, f"'{BASE}.team.heldoutFraction' must be in (0, 1)"),
        ({"team": sagemaker_model(validationFraction=-0.1)}, f"'{BASE}.team.validationFraction' must be in [0, 1)"),
        (
            {"team": sagemaker_model(heldoutFraction=0.5, validationFraction=0.5)},
            f"'{BASE}.team.validationFraction': heldoutFraction 0.5 + validationFraction 0.5 leave no rows",
        ),
        ({"team": sagemaker_model(seed=-1)}, f"'{BASE}.team.seed' must be an integer from 0"),
        ({"team": sagemaker_model(gates=None)}, f"'{BASE}.team' is missing setting(s): gates"),
    ],
)
def test_bad_model_settings_fail_with_the_key(team_root, models, message):
    with pytest.raises(ConfigError) as err:
        load_settings(with_models(models))
    assert message in str(err.value)


def test_a_team_file_named_like_the_job_verifier_is_refused(team_root):
    (team_root / "models" / "team" / "mlvault_job.py").write_text("print('not the verifier')\n")
    with pytest.raises(ConfigError, match=r"models/team/mlvault_job.py would be replaced by mlvault's in-job verifier"):
        load_settings(with_models({"team": sagemaker_model()}))


def test_a_model_name_too_long_for_a_training_job_name_is_refused(team_root):
    """Jobs are named mlvault-<stage>-<run id>, run ids <model>-<trigger>-<time>: SageMaker allows 63 characters,
    which a long stage name leaves fewer of."""
    stage = "integration"
    context = cdk_context(stage=stage)
    context["mlvault:stages"][stage] = copy.deepcopy(context["mlvault:stages"]["dev"])
    room = 63 - len(f"mlvault-{stage}-") - RUN_ID_TAIL
    for name in ("a" * (room + 1), "a" * room):
        (team_root / "models" / name).mkdir()
        (team_root / "models" / name / "train.py").write_text("")
    context["mlvault:stages"][stage]["models"] = {
        "a" * (room + 1): sagemaker_model(source=f"models/{'a' * (room + 1)}")
    }
    with pytest.raises(ConfigError, match=rf"models.{'a' * (room + 1)}': training jobs are named mlvault-{stage}-"):
        load_settings(context)
    context["mlvault:stages"][stage]["models"] = {"a" * room: sagemaker_model(source=f"models/{'a' * room}")}
    assert load_settings(context).models[0].name == "a" * room


def test_the_old_settings_are_gone():
    """trainDatasets, training and modelGates are now each model's (a stage that still has them fails, named)."""
    context = cdk_context()
    context["mlvault:stages"]["dev"]["modelGates"] = {"min_accuracy": 0.9}
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) modelGates"):
        load_settings(context)
    context = cdk_context()
    del context["mlvault:stages"]["dev"]["models"]
    with pytest.raises(ConfigError, match="missing setting\\(s\\): models"):
        load_settings(context)

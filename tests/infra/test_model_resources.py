"""One of each per model: serving function (signed, onnxruntime layer), `live` alias, IAM function URL, alarms
named with the model, deployment lock, pipeline state machine, SSM names; the per-model facts that decide trust in
the signed bundles of the shared functions, never in their environment; the trigger starts each dataset's models;
the dashboard shows each model; every function fits Lambda's size limit with one numpy."""

from __future__ import annotations

import json

import pytest

from infra.model_settings import ENGINE_SAGEMAKER
from infra.policy.lambda_rules import LAMBDA_UNZIPPED_LIMIT_BYTES, check_function_sizes
from infra.policy.rules import assembly_assets
from tests.infra.templates import environment, layer_packages, logical_id_of, signed_bundle, state_machine
from tests.infra.test_ingest_stack import of_type, role_statements

APPS = ["synthesized", "team_app"]


@pytest.fixture(params=APPS)
def app(request):
    return request.getfixturevalue(request.param)


def models_of(app):
    return app.template("-models"), app.settings


def test_each_model_has_its_serving_function_alias_and_iam_url(app):
    models, settings = models_of(app)
    functions = of_type(models, "AWS::Lambda::Function")
    for model in settings.models:
        serve = logical_id_of(models, "AWS::Lambda::Function", f"{model.scope_id}ServeFunction")
        props = functions[serve]["Properties"]
        assert props["CodeSigningConfigArn"]  # signed like every function
        layers = json.dumps(props["Layers"])
        assert "PlatformOnnxLayer" in layers
        assert "PlatformDepsLayer" in layers
        assert "ArrowLayer" not in layers
        (alias,) = [
            a
            for a in of_type(models, "AWS::Lambda::Alias").values()
            if a["Properties"]["FunctionName"] == {"Ref": serve}
        ]
        assert alias["Properties"]["Name"] == "live"
        (version,) = [
            v
            for k, v in of_type(models, "AWS::Lambda::Version").items()
            if alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [k, "Version"]}
        ]
        assert version["Properties"]["FunctionName"] == {"Ref": serve}
        assert "RoutingConfig" not in alias["Properties"]  # the deploy and rollback steps own the routing
        (url,) = [
            u
            for u in of_type(models, "AWS::Lambda::Url").values()
            if u["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [serve, "Arn"]}
        ]
        assert url["Properties"]["AuthType"] == "AWS_IAM"
        assert url["Properties"]["Qualifier"] == "live"  # the alias: its canary weights apply to URL traffic
        groups = [g["Properties"]["LogGroupName"] for g in of_type(models, "AWS::Logs::LogGroup").values()]
        assert f"/mlvault/{settings.stage}/serve/{model.name}" in groups


def test_no_one_is_granted_the_function_urls_by_default(app):
    """AWS_IAM URLs: a caller needs lambda:InvokeFunctionUrl in its own identity policy; the stack grants no
    resource-based permission to anyone (no AWS::Lambda::Permission on a serving function or its URL)."""
    models, settings = models_of(app)
    serving = {logical_id_of(models, "AWS::Lambda::Function", f"{m.scope_id}ServeFunction") for m in settings.models}
    for permission in of_type(models, "AWS::Lambda::Permission").values():
        target = json.dumps(permission["Properties"]["FunctionName"])
        assert not any(s in target for s in serving), permission
    for statement in (
        s for p in of_type(models, "AWS::IAM::Policy").values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ):
        assert "lambda:InvokeFunctionUrl" not in json.dumps(statement["Action"])


def test_each_model_has_its_own_alarms_named_with_it(app):
    models, settings = models_of(app)
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in of_type(models, "AWS::CloudWatch::Alarm").values()}
    for model in settings.models:
        prefix = f"mlvault-{settings.stage}-{model.name}"
        errors = alarms[f"{prefix}-serving-errors"]
        serve = logical_id_of(models, "AWS::Lambda::Function", f"{model.scope_id}ServeFunction")
        dimensions = {d["Name"]: d["Value"] for d in errors["Dimensions"]}
        assert dimensions == {"FunctionName": {"Ref": serve}, "Resource": {"Fn::Join": ["", [{"Ref": serve}, ":live"]]}}
        for suffix, metric in (
            ("model-attestation-failed", "ModelAttestationFailed"),
            ("feature-drift", "MaxFeatureDrift"),
        ):
            alarm = alarms[f"{prefix}-{suffix}"]
            assert alarm["MetricName"] == metric
            assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
                "Stage": settings.stage,
                "Model": model.name,
            }
        assert alarms[f"{prefix}-model-attestation-failed"]["AlarmActions"]  # a refused model pages a human
    assert len(alarms) == 3 * len(settings.models)


def test_each_model_has_its_own_pipeline_state_machine(app):
    models, settings = models_of(app)
    machines = of_type(models, "AWS::StepFunctions::StateMachine")
    assert len(machines) == len(settings.models)
    for model in settings.models:
        machine = state_machine(models, f"mlvault-{settings.stage}-{model.name}-pipeline")
        assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_the_facts_that_decide_trust_are_bundled_not_configured(app):
    """Gates, training parameters, where each model is served, its alarms and its lock reach the shared functions in
    their signed bundle; their environment names resources only."""
    from mlvault.training.gates import Gates
    from mlvault.training.params import TrainingParams

    models, settings = models_of(app)
    for function in ("PipelineFunction", "SignFunction"):
        documents = signed_bundle(models, function)
        assert "trust/anchors.json" in documents
        facts = documents["trust/models.json"]
        assert set(facts) == {m.name for m in settings.models}
        for model in settings.models:
            entry = facts[model.name]
            assert (entry["dataset"], entry["engine"]) == (model.dataset, model.engine)
            assert Gates.from_config(entry["gates"]) == model.gates
            if model.engine == ENGINE_SAGEMAKER:
                assert len(entry["code"]["sha256"]) == 64
                assert "training" not in entry
                assert entry["hyperparameters"] == dict(model.job.hyperparameters)
            else:
                assert TrainingParams(**entry["training"]) == model.training
    # the pipeline reads it with mlvault.training.specs: the same models, the same gates (tokens as strings)
    from mlvault.training.specs import parse_specs

    specs = parse_specs(json.dumps(_resolved(signed_bundle(models, "PipelineFunction")["trust/models.json"])))
    assert {n: (s.dataset, s.engine, s.gates) for n, s in specs.items()} == {
        m.name: (m.dataset, m.engine, m.gates) for m in settings.models
    }
    for function in ("DeployFunction", "AutoRollbackFunction", "RevokeFunction"):
        documents = signed_bundle(models, function)
        serving = documents["trust/serving.json"]
        assert serving["stage"] == settings.stage
        assert set(serving["models"]) == {m.name for m in settings.models}
        for model in settings.models:
            entry = serving["models"][model.name]
            serve = logical_id_of(models, "AWS::Lambda::Function", f"{model.scope_id}ServeFunction")
            prefix = f"mlvault-{settings.stage}-{model.name}"
            assert entry == {
                "function": {"Ref": serve},
                "alias": "live",
                "alarms": {
                    "rollback": [f"{prefix}-serving-errors", f"{prefix}-feature-drift"],
                    "canary": [
                        f"{prefix}-serving-errors",
                        f"{prefix}-model-attestation-failed",
                        f"{prefix}-feature-drift",
                    ],
                },
                "lock": f"serving-{model.name}",
            }
        anchors = documents["trust/anchors.json"]  # the library's shape, every model's alarms
        assert set(anchors) == {"stage", "model_signing_key", "alarms"}
        assert len(anchors["alarms"]["canary"]) == 3 * len(settings.models)
    for model in settings.models:
        own = signed_bundle(models, f"{model.scope_id}ServeFunction")["trust/served-model.json"]
        assert own == {"stage": settings.stage, "model": model.name, "dataset": model.dataset}
    for fn in of_type(models, "AWS::Lambda::Function"):
        if fn.startswith("Signer"):
            continue
        env = environment(models, fn)
        leaked = {"MLVAULT_MODEL_GATES", "MLVAULT_TRAINING_PARAMS", "MLVAULT_SERVING_ALARMS", "MLVAULT_SIGNING_KEY_ARN"}
        assert not leaked & set(env), fn
        assert "MLVAULT_SERVE_FUNCTION" not in env, fn  # where a model is served is a bundled fact


def _resolved(value):
    """A bundled document with each deploy-time intrinsic ({"Ref": ...}, {"Fn::...": ...}) as a placeholder string,
    as the signer writes it once CloudFormation resolved it."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
            return "resolved-at-deploy"
        return {k: _resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def test_deploy_rollback_and_revoke_may_route_every_models_serving_function_only(app):
    models, settings = models_of(app)
    serving = sorted(
        logical_id_of(models, "AWS::Lambda::Function", f"{m.scope_id}ServeFunction") for m in settings.models
    )
    for role in ("DeployRole", "AutoRollbackRole", "RevokeRole"):
        statements = [s for s in role_statements(models, role) if any(a.startswith("lambda:") for a in s["Action"])]
        targets = sorted({r["Fn::GetAtt"][0] for s in statements for r in s["Resource"] if "Fn::GetAtt" in r})
        assert targets == serving, role
    deploy = json.dumps(
        [s["Resource"] for s in role_statements(models, "DeployRole") if "states:DescribeExecution" in s["Action"]]
    )
    for model in settings.models:
        assert f"execution:mlvault-{settings.stage}-{model.name}-pipeline:*" in deploy


def test_the_trigger_starts_the_pipelines_of_the_models_of_a_dataset(app):
    models, settings = models_of(app)
    env = environment(models, "TriggerFunction")
    routes = env["MLVAULT_MODEL_PIPELINES"]
    text = json.dumps(routes)
    for model in settings.models:
        assert f'\\"{model.name}\\":{{\\"dataset\\":\\"{model.dataset}\\"' in text
        assert f"{model.scope_id}ModelPipeline" in text
    (rule,) = [r for k, r in of_type(models, "AWS::Events::Rule").items() if k.startswith("OnAcceptedBatch")]
    assert rule["Properties"]["EventPattern"]["detail"]["dataset"] == list(settings.train_datasets)
    (start,) = [s for s in role_statements(models, "TriggerRole") if s["Action"] == "states:StartExecution"]
    resources = start["Resource"] if isinstance(start["Resource"], list) else [start["Resource"]]
    assert sorted(r["Ref"] for r in resources) == sorted(
        logical_id_of(models, "AWS::StepFunctions::StateMachine", f"{m.scope_id}ModelPipeline") for m in settings.models
    )


def test_the_rollback_listens_to_every_models_rolling_back_alarms(app):
    models, settings = models_of(app)
    (rule,) = [r for k, r in of_type(models, "AWS::Events::Rule").items() if k.startswith("OnServingAlarm")]
    expected = [
        f"mlvault-{settings.stage}-{m.name}-{kind}"
        for m in settings.models
        for kind in ("serving-errors", "feature-drift")
    ]
    assert rule["Properties"]["EventPattern"]["detail"]["alarmName"] == expected


def test_the_ssm_parameters_name_each_models_resources(app):
    models, settings = models_of(app)
    names = {p["Properties"]["Name"]: p["Properties"]["Value"] for p in of_type(models, "AWS::SSM::Parameter").values()}
    prefix = f"/mlvault/{settings.stage}/"
    for model in settings.models:
        assert {f"{prefix}{kind}/{model.name}" for kind in ("serve-function", "function-url", "model-pipeline")} <= set(
            names
        )
        assert names[f"{prefix}model-dataset/{model.name}"] == model.dataset
        assert "FunctionUrl" in json.dumps(names[f"{prefix}function-url/{model.name}"])
    assert f"{prefix}serve-function" not in names  # with models, a lookup names its model


def test_the_dashboard_shows_each_model(app):
    models, settings = models_of(app)
    (dashboard,) = of_type(models, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for model in settings.models:
        assert f"### Model {model.name}" in body
        assert f"{model.name}: feature drift" in body
        assert f"{model.name}: serving alarms" in body
        assert f'Model=\\\\\\"{model.name}\\\\\\"' in body  # its drift search is its own series


def test_every_function_fits_lambdas_limit_with_one_numpy(app):
    """MLV-LAMBDA-SIZE on the real assets; and no two layers of a function hold the same package (numpy is in the
    onnxruntime layer only: the pyarrow layer holds none)."""
    templates = app.templates
    assert check_function_sizes(templates, assembly_assets(app.outdir), LAMBDA_UNZIPPED_LIMIT_BYTES) == []
    models = app.template("-models")
    for function in ("PipelineFunction", *(f"{m.scope_id}ServeFunction" for m in app.settings.models)):
        layers = layer_packages(app.outdir, models, function)
        seen: dict[str, str] = {}
        for layer, packages in layers.items():
            for package in packages:
                assert package not in seen, f"{function}: {package} in {seen.get(package)} and {layer}"
                seen[package] = layer
        assert {"numpy", "onnxruntime"} <= set(seen), function
    pipeline = set().union(*layer_packages(app.outdir, models, "PipelineFunction").values())
    # the built-in trainer writes its graph with onnx.helper, which imports protobuf (google), ml_dtypes and
    # typing_extensions: the pipeline function carries them all; a serving function, which only runs graphs, none
    assert {"pyarrow", "onnx", "google", "ml_dtypes", "typing_extensions"} <= pipeline  # typing_extensions: deps layer
    for model in app.settings.models:
        serving = set().union(*layer_packages(app.outdir, models, f"{model.scope_id}ServeFunction").values())
        assert not serving & {"onnx", "pyarrow", "google", "ml_dtypes"}, model.name

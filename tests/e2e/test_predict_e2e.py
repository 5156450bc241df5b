"""`mlvault predict` through the model's function URL on the local cloud: the URL found in the stage's SSM
parameters (`function-url/<model>`), each request signed with SigV4 for `lambda` (the local cloud verifies it and
authorizes lambda:InvokeFunctionUrl and lambda:InvokeFunction on the `live` alias), the serve function answering
the payload format 2.0 event: 200 predictions, 400 a client error, and the same model as a direct invocation."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import run_cli
from tests.e2e.test_models_e2e import ROWS, serve, train
from tests.e2e.test_models_e2e import models as models


@pytest.fixture(scope="module")
def deployed(cloud, models):
    """An iris model DEPLOYED and serving through the live alias."""
    if not any(m["status"] == "DEPLOYED" for m in models.registry.models("iris")):
        assert "at 100%" in train(cloud)
    return models


def test_before_its_first_deployment_a_model_refuses_through_its_url(cloud, tmp_path):
    """The live alias starts on the version CloudFormation published, which pins no model: through the URL (the
    request signed, verified and authorized by the local cloud) it answers 503 MODEL_NOT_PINNED, exit 3."""
    from mlvault.registry.records import ModelRegistry

    registry = ModelRegistry(
        cloud.client("dynamodb"), cloud.physical_id("-storage", "AWS::DynamoDB::Table", "RegistryTable")
    )
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"age": 40, "income": 50000.0}]))
    done = run_cli(cloud, "predict", "--model", "credit", str(rows))
    if any(m["status"] == "DEPLOYED" for m in registry.models("credit")):
        pytest.skip("the credit model was deployed earlier in this session")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "REFUSED MODEL_NOT_PINNED" in done.stdout


def test_predict_signs_its_request_for_the_function_url(cloud, deployed, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    done = run_cli(cloud, "predict", "--model", "iris", str(rows))
    assert done.returncode == 0, done.stdout + done.stderr
    predictions = done.stdout.split()
    assert len(predictions) == len(ROWS)
    direct, error = serve(deployed, {"rows": ROWS})  # the alias invoked directly answers the same
    assert error is None
    assert predictions == direct["predictions"]
    assert f"{direct['model']['id']} (package sha256 {direct['model']['digest'][:16]}" in done.stderr


def test_predict_prints_the_json_answer(cloud, deployed, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"rows": ROWS[:2]}))
    done = run_cli(cloud, "predict", "--model", "iris", str(rows), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert len(answer["predictions"]) == 2
    assert answer["model"]["id"].startswith("iris/")


def test_a_client_error_through_the_url_exits_3(cloud, deployed, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{k: v for k, v in ROWS[0].items() if k != "petal_length"}]))
    done = run_cli(cloud, "predict", "--model", "iris", str(rows))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "CLIENT_ERROR MISSING_FEATURE at rows[0].petal_length" in done.stdout


def test_a_model_without_a_function_url_exits_1(cloud, deployed, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS))
    done = run_cli(cloud, "predict", "--model", "nosuchmodel", str(rows))
    assert done.returncode == 1
    assert "function-url/nosuchmodel" in done.stderr

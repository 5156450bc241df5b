"""Several models, each served by its own function, through the deploy, rollback and revoke handlers on moto: where
a model is served, which alarms judge it and which lock it takes come from the bundled serving document
(trust/serving.json) for the model its registry record names, never from the environment or the deployment's state.
An alarm or a revocation moves the serving of its own models only; every attack asserts the other model's serving
did not move."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlvault.errors import RolloutRefused, TrustAnchorError
from mlvault.ledger import Ledger
from mlvault.registry.records import ModelRegistry
from mlvault.rollout.canary import DeploymentLocked
from mlvault_tools import testkeys
from mlvault_tools.samples import iris_csv
from tests.handlers.conftest import LambdaContext, load_handler, s3_body, sqs_event
from tests.handlers.models_world import (
    DRIFT,
    FUNCTIONS,
    PETALS,
    PETALS_DRIFT,
    PETALS_SERVE,
    REVOKER,
    SERVE,
    World,
    alarm_event,
    deploy,
    serving_document,
    train_and_sign,
    write_serving,
)
from tests.handlers.models_world import (
    two_models as two_models,  # the fixture
)
from tests.handlers.models_world import (
    world as world,  # the fixture
)
from tests.handlers.test_pipeline_steps import accepted_data
from tests.handlers.test_pipeline_steps import pipeline_env as pipeline_env  # the fixture

verify = load_handler("verify")


def registry(w: World) -> ModelRegistry:
    return ModelRegistry(w.env["ddb"], "registry")


def serving(w: World, model: str) -> tuple[str, dict[str, float], str | None] | None:
    """A model's alias (version, canary weights, the model its version pins), None before its first deployment."""
    lam = w.lam
    try:
        alias = lam.get_alias(FunctionName=FUNCTIONS[model], Name="live")
    except lam.exceptions.ResourceNotFoundException:
        return None
    config = lam.get_function_configuration(FunctionName=FUNCTIONS[model], Qualifier=alias["FunctionVersion"])
    pinned = config.get("Environment", {}).get("Variables", {}).get("MLVAULT_MODEL_ID")
    return alias["FunctionVersion"], alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {}, pinned


def statuses(w: World, model: str) -> dict[str, str]:
    return {m["model_id"]: m["status"] for m in registry(w).models() if m["record"]["model"] == model}


def lock(w: World, name: str) -> str | None:
    item = w.env["ddb"].get_item(TableName="registry", Key={"pk": {"S": f"LOCK#{name}"}, "sk": {"S": "LOCK"}})
    return item.get("Item", {}).get("owner", {}).get("S")


def push(w: World, seed: int, key_id: str) -> None:
    """An accepted iris batch signed by `key_id` (through the verify handler)."""
    key = f"producers/acme/iris/{key_id}-{seed}.csv"
    body = iris_csv(600, seed)
    metadata = testkeys.signed_metadata(testkeys.claim_for(key, body), key_id)
    version = w.env["s3"].put_object(Bucket=w.env["ingest"], Key=key, Body=body, Metadata=metadata)["VersionId"]
    verify.handler(sqs_event(s3_body(w.env["ingest"], key, version, len(body))), LambdaContext())
    assert Ledger(w.env["ddb"], "ledger").get(w.env["ingest"], key, version).status == "ACCEPTED"


def deployed(w: World, run_id: str, model: str) -> dict[str, Any]:
    state = deploy(w, train_and_sign(w, run_id, model), f"owner-{run_id}")
    assert state["rollout"]["percent"] == 100, state
    return state


@pytest.fixture
def both_live(two_models: World) -> World:
    """iris/1, petals/1, iris/2, petals/2 deployed in turn: each model's second generation live on its own function,
    its first SUPERSEDED."""
    accepted_data(two_models.env)
    for n in (1, 2):
        for model in ("iris", PETALS):
            deployed(two_models, f"{model}-{n}", model)
    return two_models


# --- each model on its own function ------------------------------------------------------------------------------


def test_each_model_is_deployed_to_its_own_function(both_live):
    assert serving(both_live, "iris") == ("2", {}, "iris/2")
    assert serving(both_live, PETALS) == ("2", {}, "petals/2")
    assert statuses(both_live, "iris") == {"iris/1": "SUPERSEDED", "iris/2": "DEPLOYED"}
    assert statuses(both_live, PETALS) == {"petals/1": "SUPERSEDED", "petals/2": "DEPLOYED"}
    canary = [h for h in registry(both_live).model("petals/2")["history"] if "canary" in h]
    assert [c.split(" ")[3] for c in canary] == ["10%", "50%"]  # against its own previous version, petals/1


def test_a_deploy_takes_its_models_lock_so_two_models_deploy_side_by_side(two_models):
    accepted_data(two_models.env)
    iris = train_and_sign(two_models, "iris-1")
    petals = train_and_sign(two_models, "petals-1", PETALS)
    iris = two_models.invoke("deploy", {"action": "prepare", "state": iris, "execution": "owner-iris"})
    petals = two_models.invoke("deploy", {"action": "prepare", "state": petals, "execution": "owner-petals"})
    assert (lock(two_models, "serving-iris"), lock(two_models, "serving-petals")) == ("owner-iris", "owner-petals")
    # A second deployment of iris waits for the first; petals' does not.
    other = train_and_sign(two_models, "iris-2")
    with pytest.raises(DeploymentLocked, match="owner-iris"):
        two_models.invoke("deploy", {"action": "prepare", "state": other, "execution": "owner-other"})
    for state, owner in ((petals, "owner-petals"), (iris, "owner-iris")):
        state = two_models.invoke("deploy", {"action": "advance", "state": state, "execution": owner})
        two_models.invoke("deploy", {"action": "promote", "state": state, "execution": owner})
    assert serving(two_models, "iris") == ("1", {}, "iris/1")
    assert serving(two_models, PETALS) == ("1", {}, "petals/1")
    assert (lock(two_models, "serving-iris"), lock(two_models, "serving-petals")) == (None, None)


def test_the_function_comes_from_the_registry_record_not_the_state(two_models):
    accepted_data(two_models.env)
    state = train_and_sign(two_models, "petals-1", PETALS)
    forged = {**state, "model": "iris", "function": SERVE, "function_name": SERVE, "serve_function": SERVE}
    deploy(two_models, forged, "owner-1")
    assert serving(two_models, PETALS) == ("1", {}, "petals/1")
    assert serving(two_models, "iris") is None  # the function the state named did not move, nor was it re-pinned
    assert [v["Version"] for v in two_models.lam.list_versions_by_function(FunctionName=SERVE)["Versions"]] == [
        "$LATEST"
    ]


def test_a_state_whose_versions_are_another_models_moves_nothing(both_live):
    state = train_and_sign(both_live, "petals-3", PETALS)
    state = both_live.invoke("deploy", {"action": "prepare", "state": state, "execution": "owner-3"})
    before = (serving(both_live, "iris"), serving(both_live, PETALS))
    # version 1 of petals' function pins petals/1, not the model being deployed
    forged = {**state, "rollout": {**state["rollout"], "version": "1"}}
    for action in ("advance", "promote", "rollback"):
        with pytest.raises(RolloutRefused, match="VERSION_PINS_ANOTHER_MODEL"):
            both_live.invoke("deploy", {"action": action, "state": forged, "execution": "owner-3"})
    assert (serving(both_live, "iris"), serving(both_live, PETALS)) == before
    assert registry(both_live).model("petals/3")["status"] == "SIGNED"


def test_a_model_the_stage_does_not_serve_is_refused_before_anything_moves(two_models):
    accepted_data(two_models.env)
    state = train_and_sign(two_models, "petals-1", PETALS)
    only_iris = serving_document()
    del only_iris["models"][PETALS]
    write_serving(two_models.task_root, only_iris)
    for action, extra in (("request_approval", {"token": "t"}), ("prepare", {})):
        with pytest.raises(RolloutRefused, match="MODEL_NOT_SERVED") as caught:
            two_models.invoke("deploy", {"action": action, "state": state, "execution": "owner-1", **extra})
        assert "serves iris only" in caught.value.detail
    outcome = registry(two_models).run("petals-1")["outcome"]
    assert (outcome["status"], outcome["step"], outcome["reason"]) == ("REFUSED", "deploy", "MODEL_NOT_SERVED")
    assert (serving(two_models, "iris"), serving(two_models, PETALS)) == (None, None)
    for function in (SERVE, PETALS_SERVE):  # nothing pinned, nothing published
        assert [v["Version"] for v in two_models.lam.list_versions_by_function(FunctionName=function)["Versions"]] == [
            "$LATEST"
        ]
    assert (lock(two_models, "serving-iris"), lock(two_models, "serving-petals")) == (None, None)
    assert registry(two_models).model("petals/1")["status"] == "SIGNED"


def test_the_first_model_goes_to_100_percent_when_live_is_on_a_version_that_pins_no_model(two_models):
    """Infra publishes each serving function's first version with no model and points `live` at it."""
    lam = two_models.lam
    first = lam.publish_version(FunctionName=PETALS_SERVE)["Version"]
    lam.create_alias(FunctionName=PETALS_SERVE, Name="live", FunctionVersion=first)
    accepted_data(two_models.env)
    state = deployed(two_models, "petals-1", PETALS)
    assert state["rollout"]["previous"] is None
    assert serving(two_models, PETALS) == (state["rollout"]["version"], {}, "petals/1")
    assert not [h for h in registry(two_models).model("petals/1")["history"] if "canary" in h]


# --- an alarm rolls back its own model only ----------------------------------------------------------------------


def test_an_alarm_of_one_model_rolls_back_that_model_only(both_live, monkeypatch):
    monkeypatch.setenv("MLVAULT_ROLLBACK_COOLDOWN_SECONDS", "3600")
    iris_before = serving(both_live, "iris")
    both_live.alarm(PETALS_DRIFT, "ALARM")
    report = both_live.invoke("rollback", alarm_event(PETALS_DRIFT))
    assert (report["status"], report["model"]) == ("ROLLED_BACK", PETALS), report
    assert (report["from_model"], report["to_model"]) == ("petals/2", "petals/1")
    assert serving(both_live, PETALS) == ("1", {}, "petals/1")
    assert serving(both_live, "iris") == iris_before  # the other model's alias did not move
    assert statuses(both_live, "iris") == {"iris/1": "SUPERSEDED", "iris/2": "DEPLOYED"}
    assert statuses(both_live, PETALS) == {"petals/1": "DEPLOYED", "petals/2": "ROLLED_BACK"}
    [event] = [e for e in both_live.events() if e["detail-type"] == "Model Rolled Back"]
    assert event["detail"]["model"] == PETALS
    # The cooldown is the model's own: iris' alarm right after still rolls iris back, to an iris model.
    both_live.alarm(DRIFT, "ALARM")
    report = both_live.invoke("rollback", alarm_event(DRIFT))
    assert (report["status"], report["from_model"], report["to_model"]) == ("ROLLED_BACK", "iris/2", "iris/1")
    assert serving(both_live, PETALS) == ("1", {}, "petals/1")
    both_live.alarm(PETALS_DRIFT, "OK")
    both_live.alarm(PETALS_DRIFT, "ALARM")  # a new change into ALARM of petals, within petals' cooldown
    assert both_live.invoke("rollback", alarm_event(PETALS_DRIFT))["status"] == "COOLDOWN"


def test_a_model_is_never_rolled_back_to_another_models_version(both_live):
    # petals has nothing of its own to go back to; iris/1, SUPERSEDED and verifiable, is not petals'
    registry(both_live).set_status("petals/1", "REVOKED", allowed_from=("SUPERSEDED",), note="test")
    both_live.alarm(PETALS_DRIFT, "ALARM")
    report = both_live.invoke("rollback", alarm_event(PETALS_DRIFT))
    assert (report["status"], report["model"]) == ("NO_VERIFIED_TARGET", PETALS)
    assert "refused_targets" not in report  # iris/1 was never a candidate
    assert serving(both_live, PETALS) == ("2", {}, "petals/2")
    assert serving(both_live, "iris") == ("2", {}, "iris/2")


def test_a_canary_only_alarm_rolls_nothing_back(both_live):
    before = (serving(both_live, "iris"), serving(both_live, PETALS))
    both_live.alarm("mlvault-test-petals-model-attestation-failed", "ALARM")
    report = both_live.invoke("rollback", alarm_event("mlvault-test-petals-model-attestation-failed"))
    assert report["status"] == "IGNORED"
    assert (serving(both_live, "iris"), serving(both_live, PETALS)) == before


# --- a revocation rolls back each model whose live model it revoked ----------------------------------------------


def test_a_revocation_rolls_back_each_model_whose_live_model_it_revoked(two_models):
    accepted_data(two_models.env)  # signed by acme-p256
    for model in ("iris", PETALS):
        deployed(two_models, f"{model}-1", model)
    for seed in (1, 2):
        push(two_models, 300 + seed, "acme-ed25519")
    for model in ("iris", PETALS):
        deployed(two_models, f"{model}-2", model)  # trained on the ed25519 batches too
    revoke = {
        "key_id": "acme-ed25519",
        "effective_at": "2020-01-01T00:00:00Z",
        "reason": "leaked",
        "revoked_by": REVOKER,
    }
    report = two_models.invoke("revoke", revoke)
    assert report["revoked_models"] == ["iris/2", "petals/2"]
    assert report["status"] == "ROLLED_BACK"
    assert {m: (r["status"], r["from_model"], r["to_model"], r["model"]) for m, r in report["rollbacks"].items()} == {
        "iris": ("ROLLED_BACK", "iris/2", "iris/1", "iris"),
        PETALS: ("ROLLED_BACK", "petals/2", "petals/1", PETALS),
    }
    assert serving(two_models, "iris") == ("1", {}, "iris/1")
    assert serving(two_models, PETALS) == ("1", {}, "petals/1")
    assert statuses(two_models, PETALS) == {"petals/1": "DEPLOYED", "petals/2": "REVOKED"}
    [event] = [e for e in two_models.events() if e["detail-type"] == "Key Revoked"]
    assert set(event["detail"]["rollbacks"]) == {"iris", PETALS}


def test_a_revocation_leaves_the_models_whose_live_model_it_did_not_revoke(two_models):
    accepted_data(two_models.env)
    deployed(two_models, "iris-1", "iris")
    deployed(two_models, "petals-1", PETALS)
    for seed in (1, 2):
        push(two_models, 300 + seed, "acme-ed25519")
    deployed(two_models, "petals-2", PETALS)  # only petals trains on the ed25519 batches
    iris_before = serving(two_models, "iris")
    revoke = {
        "key_id": "acme-ed25519",
        "effective_at": "2020-01-01T00:00:00Z",
        "reason": "leaked",
        "revoked_by": REVOKER,
    }
    report = two_models.invoke("revoke", revoke)
    assert (report["status"], report["model"], report["to_model"]) == ("ROLLED_BACK", PETALS, "petals/1")
    assert set(report["rollbacks"]) == {PETALS}
    assert serving(two_models, "iris") == iris_before
    assert statuses(two_models, "iris") == {"iris/1": "DEPLOYED"}


# --- the serving document fails closed ---------------------------------------------------------------------------


def _sharing_an_alarm() -> dict[str, Any]:
    """Petals' entry naming iris' drift alarm: iris' drift would roll petals back."""
    document = serving_document()
    document["models"][PETALS]["alarms"] = {"rollback": [DRIFT], "canary": [DRIFT]}
    return document


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (None, "SERVING_MISSING"),
        ("{not json", "SERVING_MALFORMED"),
        (serving_document(stage="prod"), "SERVING_WRONG_STAGE"),
        (_sharing_an_alarm(), "SERVING_MALFORMED"),
    ],
)
def test_without_a_sound_serving_document_nothing_is_deployed_rolled_back_or_revoked(world, document, code):
    path = world.task_root / "trust" / "serving.json"
    if document is None:
        path.unlink()
    else:
        path.write_text(document if isinstance(document, str) else json.dumps(document))
    calls = {
        "deploy": {"action": "prepare", "state": {"model_id": "iris/1"}, "execution": "owner-1"},
        "rollback": alarm_event(DRIFT),
        "revoke": {"key_id": "acme-p256", "effective_at": "2020-01-01T00:00:00Z", "reason": "r", "revoked_by": REVOKER},
    }
    for handler, event in calls.items():
        with pytest.raises(TrustAnchorError) as caught:
            world.invoke(handler, event)
        assert caught.value.reason == code, handler
    assert Ledger(world.env["ddb"], "ledger").revocation("acme-p256") is None  # the revocation did not start

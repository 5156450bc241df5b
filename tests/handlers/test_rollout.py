"""The deploy, rollback, revoke and sign handlers on moto, as the state machine, EventBridge and the CLI call them:
the canary judged by its alarms' history over the whole bake, runs that end in their outcome, a rollback function
that believes no event, a revocation that rolls back only what it revoked, and the bundled key and models document
deciding whom to trust and which gates a model must pass whatever the environment says. Each attack asserts that
trusted state (the alias, the registry) did not move."""

from __future__ import annotations

import json

import pytest

from mlvault.errors import AnnouncementPending, RevocationRefused
from tests.handlers.models_world import (
    ALIAS,
    DRIFT,
    ERRORS,
    FUNCTIONS,
    GATES,
    IRIS_MODEL,
    REFUSED,
    REVOKER,
    SERVE,
    World,
    alarm_event,
    deploy,
    train_and_sign,
    write_anchors,
)
from tests.handlers.models_world import (
    world as world,  # the fixture
)
from tests.handlers.test_pipeline_steps import accepted_data
from tests.handlers.test_pipeline_steps import pipeline_env as pipeline_env  # the fixture


@pytest.fixture
def live(world: World) -> World:
    """Two models deployed one after the other: the first SUPERSEDED, the second DEPLOYED and live."""
    accepted_data(world.env)
    for n in (1, 2):
        state = deploy(world, train_and_sign(world, f"run-{n}"), f"owner-{n}")
        assert state["rollout"]["percent"] == 100
    return world


def registry(w: World):
    from mlvault.registry.records import ModelRegistry

    return ModelRegistry(w.env["ddb"], "registry")


def trusted_state(w: World) -> tuple:
    """What an attack must not move: the alias (version and weights) and every model's status."""
    alias = w.alias()
    return (
        alias["FunctionVersion"],
        alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {},
        {m["model_id"]: m["status"] for m in registry(w).models()},
    )


# --- 11.6: the canary sees every alarm --------------------------------------------------------------------------


def test_an_alarm_that_went_to_alarm_and_back_during_the_bake_rolls_the_canary_back(live):
    before = live.alias()["FunctionVersion"]
    state = deploy(live, train_and_sign(live, "run-3"), "owner-3", flap=DRIFT)  # ALARM -> OK within the bake
    assert state["rollout"]["rolled_back"] is True
    assert state["rollout"]["alarm"] == DRIFT
    assert "ALARM -> OK" in state["rollout"]["alarm_detail"]
    alias = live.alias()
    assert (alias["FunctionVersion"], alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {}) == (
        before,
        {},
    )
    model = registry(live).model("iris/3")
    assert (model["status"], model["rollback_reason"]) == ("ROLLED_BACK", DRIFT)
    run = registry(live).run("run-3")  # 11.8: the run ends in its outcome, not GATES_PASSED
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == ("ROLLED_BACK", "canary", "ALARM")
    assert run["model_id"] == "iris/3"


def test_an_alarm_after_the_last_check_stops_the_promotion(live):
    state = train_and_sign(live, "run-3")
    call = {"execution": "owner-3"}
    state = live.invoke("deploy", {"action": "prepare", "state": state, **call})
    while not state["rollout"]["done"]:
        state = live.invoke("deploy", {"action": "advance", "state": state, **call})
        if not state["rollout"]["done"]:
            state = live.invoke("deploy", {"action": "check", "state": state, **call})
            assert state["rollout"]["alarm"] is None
    live.alarm(ERRORS, "ALARM")
    live.alarm(ERRORS, "OK")  # between the last check and the promotion
    from mlvault.rollout.canary import CanaryAlarmed

    with pytest.raises(CanaryAlarmed, match=ERRORS):
        live.invoke("deploy", {"action": "promote", "state": state, **call})
    assert registry(live).model("iris/3")["status"] == "SIGNED"  # not promoted: the state machine rolls back


def test_an_anchored_alarm_that_does_not_exist_lets_no_canary_through(live):
    live.cw.delete_alarms(AlarmNames=[REFUSED])
    state = deploy(live, train_and_sign(live, "run-3"), "owner-3")
    assert state["rollout"]["alarm"] == REFUSED
    assert "no such alarm" in state["rollout"]["alarm_detail"]
    assert registry(live).model("iris/3")["status"] == "ROLLED_BACK"


def test_a_clean_canary_is_promoted_and_its_run_ends_deployed(live):
    run = registry(live).run("run-2")
    assert (run["status"], run["outcome"]["step"], run["model_id"]) == ("DEPLOYED", "promote", "iris/2")
    assert registry(live).model("iris/1")["status"] == "SUPERSEDED"


def test_the_rollback_function_drops_a_canary_whatever_its_cooldown(live, monkeypatch):
    live.alarm(ERRORS, "ALARM")  # a rollback now: the cooldown starts
    assert live.invoke("rollback", alarm_event(ERRORS))["status"] == "ROLLED_BACK"
    live.alarm(ERRORS, "OK")
    monkeypatch.setenv("MLVAULT_ROLLBACK_COOLDOWN_SECONDS", "3600")
    state = train_and_sign(live, "run-3")
    call = {"execution": "owner-3"}
    state = live.invoke("deploy", {"action": "prepare", "state": state, **call})
    state = live.invoke("deploy", {"action": "advance", "state": state, **call})
    assert live.alias()["RoutingConfig"]["AdditionalVersionWeights"]  # the canary takes traffic
    live.alarm(DRIFT, "ALARM")
    report = live.invoke("rollback", alarm_event(DRIFT))
    assert report["status"] == "ROLLED_BACK", report  # not COOLDOWN: a canary is never left running
    assert not live.alias().get("RoutingConfig", {}).get("AdditionalVersionWeights")


# --- 12.3: the rollback function believes no event -----------------------------------------------------------


def test_a_forged_alarm_event_moves_nothing(live):
    before = trusted_state(live)
    report = live.invoke("rollback", alarm_event(DRIFT))  # CloudWatch has it OK, never in ALARM
    assert report["status"] == "IGNORED"
    assert "OK" in report["reason"]
    assert trusted_state(live) == before
    assert [e for e in live.events() if e["detail-type"] == "Model Rolled Back"] == []


def test_an_alarm_that_is_not_this_stages_moves_nothing_even_in_alarm(live):
    live.cw.put_metric_alarm(
        AlarmName="payments-latency",
        Namespace="payments",
        MetricName="Latency",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    live.alarm("payments-latency", "ALARM")  # really in ALARM, but not one of ours
    before = trusted_state(live)
    for event in (alarm_event("payments-latency"), alarm_event(REFUSED), {"detail-type": "x"}, alarm_event(None)):
        if event.get("detail-type") == "x":
            with pytest.raises(ValueError, match="not a rollback trigger"):
                live.invoke("rollback", event)
            continue
        assert live.invoke("rollback", event)["status"] == "IGNORED"
    assert trusted_state(live) == before


def test_a_real_alarm_rolls_back_once_whatever_the_events_say(live):
    live.alarm(DRIFT, "ALARM")
    first = live.invoke("rollback", alarm_event(DRIFT, timestamp="2026-11-25T12:00:00.000+0000"))
    assert first["status"] == "ROLLED_BACK"
    assert (first["from_model"], first["to_model"]) == ("iris/2", "iris/1")
    after = trusted_state(live)
    # Replays with other claimed timestamps: the guard is CloudWatch's transition, not the event's fields.
    for claimed in ("2026-11-25T12:00:01.000+0000", "2030-01-01T00:00:00.000+0000"):
        assert live.invoke("rollback", alarm_event(DRIFT, timestamp=claimed))["status"] == "DUPLICATE"
    assert trusted_state(live) == after
    [event] = [e for e in live.events() if e["detail-type"] == "Model Rolled Back"]
    assert (event["detail"]["from_model"], event["detail"]["alarm"]) == ("iris/2", DRIFT)
    [alert] = [a for a in live.alerts() if a.get("status") == "ROLLED_BACK"]
    assert alert["event_id"] == event["detail"]["event_id"]


def test_a_brief_real_alarm_already_back_to_ok_still_rolls_back(live):
    live.alarm(DRIFT, "ALARM")
    live.alarm(DRIFT, "OK")  # the event arrives after the alarm cleared: CloudWatch's history has it
    assert live.invoke("rollback", alarm_event(DRIFT))["status"] == "ROLLED_BACK"


def test_a_rollback_announcement_that_fails_is_delivered_by_the_retry_exactly_once(live, monkeypatch):
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    real = BaseClient._make_api_call
    failing = {"on": True}

    def sns_down(self, operation, params):
        if failing["on"] and operation == "Publish":
            raise ClientError({"Error": {"Code": "InternalError", "Message": "SNS is down"}}, operation)
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", sns_down)
    live.alarm(DRIFT, "ALARM")
    with pytest.raises(AnnouncementPending):  # the rollback is done and recorded; its alert is pending
        live.invoke("rollback", alarm_event(DRIFT))
    after = trusted_state(live)
    assert after[0] != "2"  # rolled back
    failing["on"] = False
    assert live.invoke("rollback", alarm_event(DRIFT))["status"] == "DUPLICATE"  # Lambda's retry
    assert trusted_state(live) == after
    assert [a["status"] for a in live.alerts()] == ["ROLLED_BACK"]
    assert [e["detail-type"] for e in live.events()] == ["Model Rolled Back"]


def test_the_rollback_function_takes_no_revocation(live):
    before = trusted_state(live)
    with pytest.raises(ValueError, match="not a rollback trigger"):
        live.invoke("rollback", {"action": "revoke", "key_id": "acme-p256", "effective_at": "2020-01-01T00:00:00Z"})
    assert trusted_state(live) == before


# --- 12.3: revocation, its own entry point ------------------------------------------------------------------


def test_a_revocation_records_who_revoked_and_rolls_back_the_live_model_it_revoked(live):
    from mlvault.ledger import Ledger

    revoke = {"key_id": "acme-p256", "effective_at": "2020-01-01T00:00:00Z", "reason": "leaked", "revoked_by": REVOKER}
    report = live.invoke("revoke", revoke)
    assert report["revocation"] == {
        "key_id": "acme-p256",
        "effective_at": "2020-01-01T00:00:00+00:00",
        "reason": "leaked",
        "revoked_by": REVOKER,
        "recorded": "RECORDED",
    }
    assert Ledger(live.env["ddb"], "ledger").revocation("acme-p256")["revoked_by"] == REVOKER
    assert report["revoked_models"] == ["iris/1", "iris/2"]
    assert len(report["tainted_files"]) == 3
    # Every model was trained on the key's data: nothing verified to go back to, serving left as is, and said so.
    assert report["status"] == "NO_VERIFIED_TARGET"
    assert {m["model_id"]: m["status"] for m in registry(live).models()} == {"iris/1": "REVOKED", "iris/2": "REVOKED"}
    assert registry(live).run("run-2")["status"] == "REVOKED"
    [event] = [e for e in live.events() if e["detail-type"] == "Key Revoked"]
    assert event["detail"]["revocation"]["revoked_by"] == REVOKER
    second = "arn:aws:sts::123456789012:assumed-role/admin/bob"
    again = live.invoke("revoke", {**revoke, "revoked_by": second, "effective_at": "2030-01-01T00:00:00Z"})
    assert again["revocation"]["recorded"] == "ALREADY_REVOKED"  # the first one stands
    assert again["revocation"]["revoked_by"] == REVOKER
    assert [e for e in live.events() if e["detail-type"] == "Key Revoked"] == []  # announced once


def test_a_revocation_does_not_roll_back_a_live_model_it_did_not_revoke(live):
    before = trusted_state(live)
    report = live.invoke(
        "revoke",
        {"key_id": "acme-ed25519", "effective_at": "2020-01-01T00:00:00Z", "reason": "r", "revoked_by": REVOKER},
    )
    assert (report["status"], report.get("revoked_models", [])) == ("NOT_LIVE", [])
    assert trusted_state(live) == before


REVOKE = {"key_id": "acme-p256", "effective_at": "2020-01-01T00:00:00Z", "reason": "leaked", "revoked_by": REVOKER}
NOTHING = ": nothing revoked"
NOT_A_TIME = "effective_at must be an ISO 8601 time with a time zone (e.g. 2026-11-25T10:00:00Z), got"
NOT_A_PRINCIPAL = "revoked_by must be the caller's IAM or STS principal ARN (as sts:GetCallerIdentity names it), got"


def unknown_key(key_id: str) -> str:
    return (
        f"UNKNOWN_KEY: key {key_id} is in no producer entry of the stage's trust registry (trust/producers.json in "
        f"the function's bundle){NOTHING}"
    )


def stored(w: World) -> dict[str, list[str]]:
    """Every item of the ledger and the registry, and every serving function's aliases (versions and weights):
    what a refused revocation must leave exactly as it was."""
    scan = w.env["ddb"].scan
    found = {
        t: sorted(json.dumps(i, sort_keys=True, default=repr) for i in scan(TableName=t)["Items"])
        for t in ("ledger", "registry")
    }
    for function in FUNCTIONS.values():
        found[function] = sorted(
            json.dumps(a, sort_keys=True) for a in w.lam.list_aliases(FunctionName=function)["Aliases"]
        )
    return found


def refused(w: World, event: dict) -> RevocationRefused:
    """The revoke handler's refusal of `event`, with what Lambda returns the CLI for it (FunctionError: the
    payload's errorType and a one-line errorMessage) and proof that nothing was recorded, moved or announced."""
    w.events()  # what came before: read, so that only this call's announcements remain
    w.alerts()
    before = stored(w)
    with pytest.raises(RevocationRefused) as caught:
        w.invoke("revoke", event)
    err = caught.value
    assert (type(err).__name__, str(err)) == ("RevocationRefused", f"{err.reason}: {err.detail}")  # errorType/Message
    assert "\n" not in str(err)  # one line for the CLI's `revocation NOT handled: <errorMessage>`
    assert stored(w) == before  # no revocation, no taint, no model or run status, no alias moved
    assert (w.events(), w.alerts()) == ([], [])  # nothing announced
    return err


def test_a_revocation_of_a_key_in_no_producer_entry_is_refused_and_records_nothing(live):
    from mlvault.ledger import Ledger

    for typo in ("acme-p265", "ACME-P256", "acme", "demo-producer"):  # a typo, a producer id: no such key
        err = refused(live, {**REVOKE, "key_id": typo})
        assert (err.reason, str(err)) == ("UNKNOWN_KEY", unknown_key(repr(typo)))
        assert Ledger(live.env["ddb"], "ledger").revocation(typo) is None
    assert live.invoke("revoke", REVOKE)["revocation"]["recorded"] == "RECORDED"  # the real key id still revokes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key_id": ""}, unknown_key("''")),
        ({"key_id": None}, unknown_key("None")),
        ({"reason": ""}, f"NO_REASON: a revocation needs a reason, got ''{NOTHING}"),
        ({"reason": " \t\n "}, f"NO_REASON: a revocation needs a reason, got ' \\t\\n '{NOTHING}"),
        ({"reason": None}, f"NO_REASON: a revocation needs a reason, got None{NOTHING}"),
        ({"revoked_by": ""}, f"MALFORMED_REVOKER: {NOT_A_PRINCIPAL} ''{NOTHING}"),
        ({"revoked_by": "a"}, f"MALFORMED_REVOKER: {NOT_A_PRINCIPAL} 'a'{NOTHING}"),
        ({"revoked_by": "arn:x"}, f"MALFORMED_REVOKER: {NOT_A_PRINCIPAL} 'arn:x'{NOTHING}"),
        (
            {"revoked_by": f"{REVOKER}\nforged"},
            f"MALFORMED_REVOKER: {NOT_A_PRINCIPAL} {f'{REVOKER}{chr(10)}forged'!r}{NOTHING}",
        ),
        ({"revoked_by": ["arn"]}, f"MALFORMED_REVOKER: {NOT_A_PRINCIPAL} ['arn']{NOTHING}"),
        ({"effective_at": "yesterday"}, f"MALFORMED_EFFECTIVE_AT: {NOT_A_TIME} 'yesterday'{NOTHING}"),
        (
            {"effective_at": "2020-01-01T00:00:00"},
            f"MALFORMED_EFFECTIVE_AT: {NOT_A_TIME} '2020-01-01T00:00:00'{NOTHING}",
        ),
        ({"effective_at": ""}, f"MALFORMED_EFFECTIVE_AT: {NOT_A_TIME} ''{NOTHING}"),
        ({"effective_at": 1577836800}, f"MALFORMED_EFFECTIVE_AT: {NOT_A_TIME} 1577836800{NOTHING}"),
    ],
)
def test_a_revocation_without_a_reason_or_with_a_malformed_field_is_refused_and_records_nothing(world, change, message):
    accepted_data(world.env, batches=1)  # a file the key signed: a revocation would taint it
    err = refused(world, {**REVOKE, **change})
    assert str(err) == message


def test_a_revocation_trusts_the_bundled_registry_not_the_environment(world, monkeypatch):
    """A registry the environment names (the ingest functions' MLVAULT_TRUST_FILE), holding a key the bundled one
    lacks, does not make that key revocable; without the bundled registry nothing is revoked."""
    from mlvault.errors import TrustAnchorError
    from mlvault.ledger import Ledger

    accepted_data(world.env, batches=1)
    other = json.loads((world.task_root / "trust" / "producers.json").read_text())
    other["producers"]["acme"]["keys"][0]["id"] = "acme-elsewhere"
    (world.task_root / "trust" / "elsewhere.json").write_text(json.dumps(other))
    monkeypatch.setenv("MLVAULT_TRUST_FILE", "trust/elsewhere.json")
    err = refused(world, {**REVOKE, "key_id": "acme-elsewhere"})
    assert str(err) == unknown_key("'acme-elsewhere'")

    (world.task_root / "trust" / "producers.json").unlink()
    before = stored(world)
    with pytest.raises(TrustAnchorError) as caught:
        world.invoke("revoke", REVOKE)
    assert str(caught.value) == "PRODUCERS_MISSING: no trust registry 'trust/producers.json' in the function's bundle"
    assert stored(world) == before
    assert Ledger(world.env["ddb"], "ledger").revocation("acme-p256") is None


# --- 12.2: the bundled key decides, not the environment -------------------------------------------------------


def test_the_sign_and_deploy_steps_trust_the_bundled_key_whatever_the_environment_says(world, monkeypatch):
    accepted_data(world.env)
    other = world.env["kms"].create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("MLVAULT_SIGNING_KEY_ARN", other)  # read by nothing
    state = train_and_sign(world, "run-1")
    model = registry(world).model(state["model_id"])
    assert model["signing_key_arn"] == world.env["key"]  # signed with the anchored key
    deploy(world, state, "owner-1")
    env = world.lam.get_function_configuration(FunctionName=SERVE, Qualifier=world.alias()["FunctionVersion"])
    assert "MLVAULT_SIGNING_KEY_ARN" not in env["Environment"]["Variables"]  # no key is pinned by configuration


def test_a_deploy_whose_bundled_key_is_another_refuses_the_model_and_says_so(world):
    from mlvault.errors import RolloutRefused
    from tests.handlers.models_world import signing_key

    accepted_data(world.env)
    state = train_and_sign(world, "run-1")
    other = world.env["kms"].create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    write_anchors(world.task_root, signing_key(world.env["kms"], other))
    with pytest.raises(RolloutRefused, match="WRONG_SIGNING_KEY"):
        world.invoke("deploy", {"action": "prepare", "state": state, "execution": "owner-1"})
    run = registry(world).run("run-1")
    assert (run["status"], run["outcome"]["step"], run["outcome"]["reason"]) == (
        "REFUSED",
        "deploy",
        "WRONG_SIGNING_KEY",
    )
    with pytest.raises(world.lam.exceptions.ResourceNotFoundException):
        world.lam.get_alias(FunctionName=SERVE, Name=ALIAS)  # nothing deployed


def test_a_deploy_with_a_disabled_signing_key_is_blocked_with_an_alert(world, monkeypatch):
    from botocore.exceptions import ClientError

    from mlvault.attestation import openssf
    from mlvault.errors import RolloutRefused

    accepted_data(world.env)
    state = train_and_sign(world, "run-1")

    def as_aws(kms, key_arn):  # GetPublicKey of a Disabled key, as AWS answers it
        raise ClientError(
            {"Error": {"Code": "DisabledException", "Message": f"{key_arn} is disabled."}}, "GetPublicKey"
        )

    monkeypatch.setattr(openssf, "kms_public_key_pem", as_aws)
    with pytest.raises(RolloutRefused, match="SIGNING_KEY_UNUSABLE"):
        world.invoke("deploy", {"action": "prepare", "state": state, "execution": "owner-1"})
    assert registry(world).run("run-1")["status"] == "REFUSED"
    [alert] = [a for a in world.alerts() if a.get("step") == "deploy"]
    assert alert["reason"] == "SIGNING_KEY_UNUSABLE"
    [event] = [e for e in world.events() if e["detail-type"] == "Model Pipeline Blocked"]
    assert event["detail"]["run_id"] == "run-1"
    with pytest.raises(world.lam.exceptions.ResourceNotFoundException):
        world.lam.get_alias(FunctionName=SERVE, Name=ALIAS)
    assert json.loads(json.dumps(alert))  # plain JSON for any subscriber


# --- the bundled models document decides the gates, not the environment -------------------------------------


def _spy_on_clients(monkeypatch) -> list[str]:
    """The AWS clients made from now on (boto3.client), by service."""
    import boto3

    made: list[str] = []
    real = boto3.client

    def client(service, *args, **kwargs):
        made.append(service)
        return real(service, *args, **kwargs)

    monkeypatch.setattr(boto3, "client", client)
    return made


@pytest.mark.parametrize(
    ("document", "refusal"),
    [
        (None, "MODELS_MISSING"),  # no models document: no fallback to the environment's gates
        ({"iris": {**IRIS_MODEL, "gates": {"min_acuracy": 0.0}}}, "models.iris: gates: unknown setting"),  # a typo
    ],
)
def test_a_pipeline_or_sign_function_without_a_sound_models_document_refuses_before_touching_anything(
    world, monkeypatch, document, refusal
):
    from mlvault.errors import TrustAnchorError

    accepted_data(world.env)
    path = world.task_root / "trust" / "models.json"
    if document is None:
        path.unlink()
    else:
        path.write_text(json.dumps(document))
    monkeypatch.setenv("MLVAULT_MODEL_GATES", json.dumps({"min_accuracy": 0.0}))  # an insider's: read by nothing
    monkeypatch.setenv("MLVAULT_TRAINING_PARAMS", json.dumps({"seed": 1}))
    made = _spy_on_clients(monkeypatch)
    calls = {
        "pipeline": {"step": "train", "state": {"run_id": "run-1", "dataset": "iris"}},
        "sign": {"state": {"run_id": "run-1", "dataset": "iris", "model_id": "iris/1"}},
    }
    for handler, event in calls.items():
        if document is None:
            with pytest.raises(TrustAnchorError) as caught:
                world.invoke(handler, event)
            assert caught.value.reason == refusal, handler
        else:
            with pytest.raises(ValueError, match=refusal):  # malformed: refused by parse_specs, naming the key
                world.invoke(handler, event)
    assert made == []  # refused when built: no AWS client was even made
    assert registry(world).runs() == []  # no run started, nothing trained, registered or signed
    assert registry(world).models() == []
    assert world.env["s3"].list_object_versions(Bucket="models").get("Versions", []) == []


@pytest.mark.parametrize(
    ("configured", "bundled", "passes"),
    [
        # a stricter gate on the function's configuration blocks nothing the bundled gates let through
        ({"min_accuracy": 0.9999}, GATES, True),
        # a laxer one lets nothing through that the bundled gates stop
        ({"min_accuracy": 0.0, "max_parity_difference": 1.0}, {**GATES, "min_accuracy": 0.9999}, False),
    ],
)
def test_the_gates_of_a_run_are_the_bundled_ones_whatever_the_functions_environment_says(
    world, monkeypatch, configured, bundled, passes
):
    from mlvault.training.gates import Gates
    from mlvault.training.pipeline import GatesFailed

    accepted_data(world.env)
    (world.task_root / "trust" / "models.json").write_text(json.dumps({"iris": {**IRIS_MODEL, "gates": bundled}}))
    monkeypatch.setenv("MLVAULT_MODEL_GATES", json.dumps(configured))  # an insider's change of the configuration
    monkeypatch.setenv("MLVAULT_TRAINING_PARAMS", json.dumps({"seed": 99}))
    state = world.invoke("pipeline", {"step": "train", "state": {"run_id": "run-1", "dataset": "iris"}})
    if passes:
        state = world.invoke("pipeline", {"step": "evaluate", "state": state})
        state = world.invoke("pipeline", {"step": "register", "state": state})
    else:
        with pytest.raises(GatesFailed, match="min_accuracy"):
            world.invoke("pipeline", {"step": "evaluate", "state": state})
    run = registry(world).run("run-1")
    assert run["status"] == ("REGISTERED" if passes else "GATES_FAILED")
    assert run["gates"]["gates"] == Gates.from_config(bundled).to_json()  # the gates the run was judged by
    thresholds = {r["name"]: r["threshold"] for r in run["gates"]["results"]}
    for name in ("min_accuracy", "max_parity_difference", "min_disparate_impact"):
        assert thresholds[name] == bundled[name], name
    assert run["params"]["seed"] == IRIS_MODEL["training"]["seed"]  # the bundled training, not the environment's
    if passes:  # the registered record carries the bundled thresholds too
        record = registry(world).model(state["model_id"])["record"]
        assert {r["name"]: r["threshold"] for r in record["gates"]["results"]} == thresholds
    else:
        assert registry(world).models() == []

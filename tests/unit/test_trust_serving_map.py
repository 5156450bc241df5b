"""The bundled serving document (mlvault.trust.serving_map): where each model is served, its alarms and its lock.
Exactly the documented shape loads; anything else fails closed with a stable code, and no function or alarm may be
two models'."""

from __future__ import annotations

import json

import pytest

from mlvault.errors import TrustAnchorError
from mlvault.trust.serving_map import load_serving, parse_serving
from mlvault.wiring import Bundle
from tests.unit.documents import changed

IRIS = {
    "function": "mlvault-dev-iris-serve",
    "alias": "live",
    "alarms": {
        "rollback": ["mlvault-dev-iris-serving-errors", "mlvault-dev-iris-feature-drift"],
        "canary": [
            "mlvault-dev-iris-serving-errors",
            "mlvault-dev-iris-model-attestation-failed",
            "mlvault-dev-iris-feature-drift",
        ],
    },
    "lock": "serving-iris",
}
CREDIT = {
    "function": "mlvault-dev-credit-serve",
    "alias": "live",
    "alarms": {
        "rollback": ["mlvault-dev-credit-serving-errors", "mlvault-dev-credit-feature-drift"],
        "canary": ["mlvault-dev-credit-serving-errors", "mlvault-dev-credit-model-attestation-failed"],
    },
    "lock": "serving-credit",
}
GOOD = {"stage": "dev", "models": {"iris": IRIS, "credit": CREDIT}}


def _changed(path: str, value) -> bytes:
    return changed(GOOD, path, value)


def test_the_documented_shape_loads_and_each_model_is_found_by_name_and_by_alarm():
    serving = parse_serving(json.dumps(GOOD).encode(), stage="dev")
    assert serving.models == ("credit", "iris")
    credit = serving.target("credit")
    assert (credit.model, credit.function, credit.alias, credit.lock) == (
        "credit",
        "mlvault-dev-credit-serve",
        "live",
        "serving-credit",
    )
    assert credit.rollback_alarms == ("mlvault-dev-credit-serving-errors", "mlvault-dev-credit-feature-drift")
    assert credit.canary_alarms == ("mlvault-dev-credit-serving-errors", "mlvault-dev-credit-model-attestation-failed")
    assert serving.target("fraud") is None
    assert serving.for_alarm("mlvault-dev-iris-feature-drift") == serving.target("iris")
    assert serving.for_alarm("mlvault-dev-credit-model-attestation-failed") == credit  # a canary-only alarm is its too
    assert serving.for_alarm("payments-latency") is None


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (b"", "SERVING_MALFORMED", "expected a JSON object"),
        (b"\xff", "SERVING_MALFORMED", "expected a JSON object"),
        (b"[]", "SERVING_MALFORMED", "expected an object"),
        (b'{"stage": "dev", "stage": "dev", "models": {}}', "SERVING_MALFORMED", "duplicate fields ['stage']"),
        (
            b'{"stage": "dev", "models": {"iris": {"lock": "a", "lock": "b"}}}',
            "SERVING_MALFORMED",
            "duplicate fields ['lock']",
        ),
        (_changed("models", KeyError), "SERVING_MALFORMED", "missing ['models']"),
        (_changed("extra", 1), "SERVING_MALFORMED", "unknown ['extra']"),
        (_changed("stage", ""), "SERVING_MALFORMED", "the stage's name"),
        (_changed("models", {}), "SERVING_MALFORMED", "at least one model"),
        (_changed("models", []), "SERVING_MALFORMED", "at least one model"),
        (_changed("models.Iris Model", IRIS), "SERVING_MALFORMED", "expected a model name"),
        (_changed("models.iris", "mlvault-dev-iris-serve"), "SERVING_MALFORMED", "models.iris: expected an object"),
        (_changed("models.iris.lock", KeyError), "SERVING_MALFORMED", "missing ['lock']"),
        (_changed("models.iris.weight", 1), "SERVING_MALFORMED", "unknown ['weight']"),
        (_changed("models.iris.function", ""), "SERVING_MALFORMED", "models.iris.function: expected a name"),
        (_changed("models.iris.alias", None), "SERVING_MALFORMED", "models.iris.alias: expected a name"),
        (_changed("models.iris.lock", "serving\niris"), "SERVING_MALFORMED", "models.iris.lock: expected a name"),
        (_changed("models.iris.alarms.canary", KeyError), "SERVING_MALFORMED", "missing ['canary']"),
        (_changed("models.iris.alarms.rollback", []), "SERVING_MALFORMED", "non-empty list"),
        (_changed("models.iris.alarms.canary", ["a", "a"]), "SERVING_MALFORMED", "each alarm once"),
        (_changed("models.iris.alarms.canary", ["bad\nname"]), "SERVING_MALFORMED", "alarm names"),
        (_changed("models.iris.alarms.rollback", "errors"), "SERVING_MALFORMED", "non-empty list"),
        (_changed("stage", "prod"), "SERVING_WRONG_STAGE", "of stage 'prod'"),
        (b"x" * (64 * 1024 + 1), "SERVING_MALFORMED", "at most"),
    ],
)
def test_anything_else_is_refused_with_its_code(data, reason, detail):
    with pytest.raises(TrustAnchorError) as caught:
        parse_serving(data, stage="dev")
    assert caught.value.reason == reason
    assert detail in caught.value.detail
    assert Bundle.SERVING in caught.value.detail or reason == "SERVING_WRONG_STAGE"


def test_an_alarm_of_two_models_is_refused():
    """An alarm of model A that also named model B would roll B back on A's trouble (and judge B's canary by it)."""
    shared = "mlvault-dev-iris-feature-drift"
    for field in ("rollback", "canary"):
        data = _changed(f"models.credit.alarms.{field}", ["mlvault-dev-credit-serving-errors", shared])
        with pytest.raises(TrustAnchorError) as caught:
            parse_serving(data, stage="dev")
        assert caught.value.reason == "SERVING_MALFORMED"
        assert f"the alarm {shared!r} is named by models 'credit' and 'iris'" in caught.value.detail


def test_a_function_of_two_models_is_refused():
    """A deployment of one model would re-pin and move the other's serving."""
    with pytest.raises(TrustAnchorError) as caught:
        parse_serving(_changed("models.credit.function", IRIS["function"]), stage="dev")
    assert caught.value.reason == "SERVING_MALFORMED"
    assert "the function 'mlvault-dev-iris-serve' is named by models 'credit' and 'iris'" in caught.value.detail


def test_an_alarm_in_both_lists_of_one_model_is_its_own():
    serving = parse_serving(json.dumps(GOOD).encode(), stage="dev")
    assert set(serving.target("iris").rollback_alarms) <= set(serving.target("iris").canary_alarms)


def test_no_file_is_serving_missing_and_the_file_is_read_from_the_bundle(tmp_path):
    path = tmp_path / Bundle.SERVING
    with pytest.raises(TrustAnchorError) as caught:
        load_serving(path, stage="dev")
    assert caught.value.reason == "SERVING_MISSING"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(GOOD))
    assert load_serving(path, stage="dev").target("iris").function == IRIS["function"]

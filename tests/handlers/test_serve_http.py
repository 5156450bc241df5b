"""The serve handler reached through its function URL: Lambda's HTTP event (payload format 2.0) in, an HTTP
response out. A POST of JSON is served (200); a client error is 400 (405 for another method, 415 for a body that
is not declared JSON), with the same structured error and ClientErrors metric as a direct invocation; a refused
model is 503 with its attestation code and the ModelAttestationFailed metric; a model failing is a function error
(Lambda answers 502, counted in Errors)."""

from __future__ import annotations

import base64
import json

import pytest

from mlvault.errors import ServingFailed
from mlvault.serving import function_url
from tests.handlers.serve_world import MODEL_A, MODEL_ID, SETOSA, VIRGINICA, invoke, metrics, refused, sha256
from tests.handlers.serve_world import env as env  # the fixtures
from tests.handlers.serve_world import out as out
from tests.handlers.serving_packages import typed_files


def http_event(
    body: str | bytes | None = None,
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
    base64_encoded: bool = False,
    rows: list | None = None,
) -> dict:
    """A function URL request as Lambda hands it to the function (payload format 2.0, an AWS_IAM-signed caller)."""
    if body is None and rows is not None:
        body = json.dumps({"rows": rows})
    if isinstance(body, bytes) or base64_encoded:
        raw = body if isinstance(body, bytes) else body.encode()
        body, base64_encoded = base64.b64encode(raw).decode(), True
    headers = {
        "host": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws",
        "x-amz-date": "20261201T120000Z",
        "x-forwarded-proto": "https",
        "user-agent": "mlvault-cli",
    }
    if content_type is not None:
        headers["content-type"] = content_type
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghijklmnopqrstuvwxyz012345",
            "authorizer": {
                "iam": {
                    "accessKey": "AKIAIOSFODNN7EXAMPLE",
                    "accountId": "123456789012",
                    "callerId": "AIDACKCEVSQ6C2EXAMPLE",
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": "arn:aws:iam::123456789012:user/caller",
                    "userId": "AIDACKCEVSQ6C2EXAMPLE",
                }
            },
            "domainName": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abcdefghijklmnopqrstuvwxyz012345",
            "http": {
                "method": method,
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "mlvault-cli",
            },
            "requestId": "11111111-2222-3333-4444-555555555555",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1796126400000,
        },
        "isBase64Encoded": base64_encoded,
    }
    if body is not None:
        event["body"] = body
    return event


def answered(response: dict, status: int) -> dict:
    """The HTTP response's status and headers, then its JSON body."""
    assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert response["statusCode"] == status
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def client_errors(lines: list[dict]) -> list[str]:
    return [m["Reason"] for m in metrics(lines) if "ClientErrors" in m]


def test_a_post_of_json_is_served_200(env, out):
    body = answered(invoke(http_event(rows=[SETOSA, VIRGINICA])), 200)
    assert body == {
        "predictions": ["setosa", "virginica"],
        "model": {"id": MODEL_ID, "digest": sha256(MODEL_A), "version": env.versions["a"]},
    }
    assert body == invoke({"rows": [SETOSA, VIRGINICA]})  # the same answer as a direct invocation
    [predictions, _] = [m for m in metrics(out()) if "Predictions" in m]
    assert predictions["Predictions"] == [2.0]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/x+json"]
)
def test_json_media_types_are_accepted(env, content_type):
    assert answered(invoke(http_event(rows=[SETOSA], content_type=content_type)), 200)["predictions"] == ["setosa"]


def test_a_base64_encoded_body_is_decoded(env):
    event = http_event(json.dumps({"rows": [VIRGINICA]}), base64_encoded=True)
    assert event["isBase64Encoded"] is True
    assert answered(invoke(event), 200)["predictions"] == ["virginica"]


@pytest.mark.parametrize(
    ("event", "code", "field"),
    [
        (http_event(rows=[{"site": "north"}]), "MISSING_FEATURE", "rows[0].petal_length"),
        (http_event(rows=[{**SETOSA, "petal_length": "x"}]), "NOT_A_NUMBER", "rows[0].petal_length"),
        (http_event(json.dumps([SETOSA])), "MALFORMED_REQUEST", ""),
        (http_event(json.dumps({"rows": [SETOSA] * 1001})), "TOO_MANY_ROWS", "rows"),
        (http_event("{not json"), "NOT_JSON", ""),
        (http_event(""), "NOT_JSON", ""),
        (http_event(b"\xff\xfe{}"), "NOT_JSON", ""),
        (http_event('{"rows": []}', base64_encoded=False) | {"isBase64Encoded": True}, "NOT_JSON", ""),
    ],
    ids=["missing", "not-a-number", "a-list", "too-many", "not-json", "empty", "not-utf8", "bad-base64"],
)
def test_a_client_error_is_400_with_the_structured_error(env, out, event, code, field):
    out()
    body = answered(invoke(event), 400)
    assert body["error"]["code"] == code
    assert (body["error"]["field"], body["error"]["kind"]) == (field, "client")
    lines = out()
    assert client_errors(lines) == [code]
    assert not [line for line in lines if line.get("level") == "ERROR"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "HEAD"])
def test_another_method_is_405(env, out, method):
    out()
    response = invoke(http_event(rows=[SETOSA], method=method))
    body = answered(response, 405)
    assert response["headers"]["allow"] == "POST"
    assert (body["error"]["code"], body["error"]["kind"]) == ("METHOD_NOT_ALLOWED", "client")
    assert repr(method) in body["error"]["message"]
    assert client_errors(out()) == ["METHOD_NOT_ALLOWED"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "jsonish"])
def test_a_body_not_declared_json_is_415(env, out, content_type):
    out()
    body = answered(invoke(http_event(rows=[SETOSA], content_type=content_type)), 415)
    assert (body["error"]["code"], body["error"]["field"]) == ("UNSUPPORTED_MEDIA_TYPE", "content-type")
    assert client_errors(out()) == ["UNSUPPORTED_MEDIA_TYPE"]


@pytest.mark.parametrize(("status", "reason"), [("REVOKED", "MODEL_REVOKED"), (None, "MODEL_NOT_REGISTERED")])
def test_a_refused_model_is_503_with_its_attestation_code(env, out, status, reason):
    env.status(status)
    refused(out, reason, http_event(rows=[SETOSA]))  # 503, kind model, the metric and the log line


def test_a_refused_model_is_503_whatever_the_request(env, out):
    env.pin(MLVAULT_SIGNATURE_KEY="signatures/iris/3/missing.sig")
    refused(out, "MODEL_UNSIGNED", http_event(rows=[SETOSA], method="GET"))


def test_a_model_failing_is_a_function_error_not_an_answer(env, out):
    env.publish(typed_files(classes=("maybe", "yes")))
    with pytest.raises(ServingFailed, match="MODEL_OUTPUT_INVALID"):  # Lambda answers 502, Errors counts it
        invoke(http_event(rows=[{"count": 1, "flag": False}]))


def test_a_direct_invocation_is_not_taken_for_an_http_request(env):
    assert not function_url.is_http({"rows": [SETOSA]})
    assert not function_url.is_http({"version": "2.0", "rows": []})
    assert not function_url.is_http({"version": "1.0", "requestContext": {"http": {}}})
    assert function_url.is_http(http_event(rows=[]))
    error = invoke({"version": "2.0", "rows": [SETOSA]})["error"]  # a direct invocation: no HTTP response
    assert error["code"] == "MALFORMED_REQUEST"

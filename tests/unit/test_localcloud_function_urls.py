"""Gap 25 without a cloud: SigV4 verification of a function URL request (signed by botocore, as clients sign) and
the payload format 2.0 event and response of function_url_payload.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from localcloud.function_url_payload import http_response, request_event
from localcloud.sigv4_verify import Secret, SignatureRefused, verify

URL = "http://127.0.0.1:5000/0123456789abcdef0123456789abcdef/predict/v1?b=2&a=1&c=x%20y"
SESSION = Secret("session-secret", "session-token", datetime.now(UTC) + timedelta(hours=1))
SECRETS = {"LKIADEVELOPER": Secret("local-cloud"), "ASIASESSION": SESSION}


def signed(credentials, *, body=b'{"rows": [1]}', url=URL, presign=False, service="lambda", region="eu-west-1"):
    method = "GET" if presign else "POST"  # a presigned URL is followed without a body
    body = b"" if presign else body
    request = AWSRequest(method=method, url=url, data=body, headers={"content-type": "application/json"})
    if presign:
        SigV4QueryAuth(credentials, service, region, expires=60).add_auth(request)
    else:
        SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = parts.netloc
    return {"method": method, "raw_path": parts.path, "raw_query": parts.query, "headers": headers, "body": body}


def check(request, **overrides):
    return verify(**{**request, **overrides}, service="lambda", region="eu-west-1", secret_of=SECRETS.get)


def refused(request, **overrides):
    with pytest.raises(SignatureRefused) as err:
        check(request, **overrides)
    return err.value.code, err.value.message


@pytest.mark.parametrize("presign", [False, True])
def test_requests_signed_as_botocore_signs_them_verify(presign):
    assert check(signed(Credentials("LKIADEVELOPER", "local-cloud"), presign=presign)).access_key == "LKIADEVELOPER"
    session = Credentials("ASIASESSION", "session-secret", "session-token")
    assert check(signed(session, presign=presign)).access_key == "ASIASESSION"


def test_repeated_query_parameters_and_encoded_paths_are_canonical():
    url = "http://127.0.0.1:5000/0123456789abcdef0123456789abcdef/a%20b/c?z=1&a=2&a=1&e=%2F"
    assert check(signed(Credentials("LKIADEVELOPER", "local-cloud"), url=url)).service == "lambda"


def test_any_change_after_signing_breaks_the_signature():
    request = signed(Credentials("LKIADEVELOPER", "local-cloud"))
    mismatch = "InvalidSignatureException"
    assert refused(request, body=b'{"rows": [2]}')[0] == mismatch
    assert refused(request, raw_path=request["raw_path"] + "x")[0] == mismatch
    assert refused(request, raw_query="a=1")[0] == mismatch
    assert refused(request, method="PUT")[0] == mismatch
    assert refused(request, headers={**request["headers"], "content-type": "text/plain"})[0] == mismatch
    wrong = signed(Credentials("LKIADEVELOPER", "not-the-secret"))
    assert refused(wrong)[1].startswith("The request signature we calculated does not match")


def test_what_is_refused_before_the_signature_is_computed():
    assert refused({**signed(Credentials("LKIADEVELOPER", "x")), "headers": {"host": "h"}}) == (
        "AccessDeniedException",
        "Forbidden",
    )
    assert refused(signed(Credentials("AKIAUNKNOWN", "x")))[0] == "UnrecognizedClientException"
    assert refused(signed(Credentials("ASIASESSION", "session-secret")))[0] == "UnrecognizedClientException"
    assert refused(signed(Credentials("LKIADEVELOPER", "local-cloud"), service="s3")) == (
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'lambda'.",
    )
    assert refused(signed(Credentials("LKIADEVELOPER", "local-cloud"), region="us-east-1"))[0] == (
        "InvalidSignatureException"
    )
    late = datetime.now(UTC) + timedelta(minutes=6)
    code, message = refused(signed(Credentials("LKIADEVELOPER", "local-cloud")), now=late)
    assert code == "InvalidSignatureException"
    assert message.startswith("Signature expired:")
    expired = {"ASIAOLD": Secret("s", "t", datetime.now(UTC) - timedelta(seconds=1))}
    with pytest.raises(SignatureRefused, match="expired"):
        verify(
            **signed(Credentials("ASIAOLD", "s", "t")),
            service="lambda",
            region="eu-west-1",
            secret_of=expired.get,
        )


def event(**overrides):
    arguments = {
        "url_id": "0123456789abcdef0123456789abcdef",
        "region": "eu-west-1",
        "account": "123456789012",
        "method": "get",
        "raw_path": "/a/b",
        "raw_query": "x=1&x=2&y=",
        "headers": {"cookie": "a=1; b=2", "content-type": "text/csv", "user-agent": "test"},
        "body": b"1,2",
        "source_ip": "127.0.0.1",
        "iam": None,
    }
    return request_event(**{**arguments, **overrides})


def test_the_event_of_payload_format_2_0():
    e = event()
    assert {k: e[k] for k in ("version", "routeKey", "rawPath", "rawQueryString", "isBase64Encoded", "body")} == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/a/b",
        "rawQueryString": "x=1&x=2&y=",
        "isBase64Encoded": False,
        "body": "1,2",
    }
    assert e["cookies"] == ["a=1", "b=2"]
    assert e["headers"] == {"content-type": "text/csv", "user-agent": "test"}
    assert e["queryStringParameters"] == {"x": "1,2", "y": ""}
    context = e["requestContext"]
    assert context["accountId"] == "anonymous"  # a NONE URL's caller
    assert "authorizer" not in context
    assert context["http"] == {
        "method": "GET",
        "path": "/a/b",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "test",
    }
    assert context["domainName"] == "0123456789abcdef0123456789abcdef.lambda-url.eu-west-1.on.aws"
    binary = event(headers={"content-type": "application/octet-stream"}, body=b"\x00", raw_query="")
    assert (binary["body"], binary["isBase64Encoded"]) == (base64.b64encode(b"\x00").decode(), True)
    assert "queryStringParameters" not in binary
    assert "body" not in event(body=b"")
    signed_event = event(iam={"userArn": "arn:aws:iam::123456789012:user/u"})
    assert signed_event["requestContext"]["accountId"] == "123456789012"
    assert signed_event["requestContext"]["authorizer"] == {"iam": {"userArn": "arn:aws:iam::123456789012:user/u"}}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"ok": True}, (200, [("Content-Type", "application/json")], b'{"ok": true}')),
        ("text", (200, [("Content-Type", "application/json")], b"text")),
        ([1, 2], (200, [("Content-Type", "application/json")], b"[1, 2]")),
        (
            {"statusCode": 404, "headers": {"x": "1"}, "cookies": ["c=1"], "body": "gone"},
            (404, [("x", "1"), ("Set-Cookie", "c=1")], b"gone"),
        ),
        ({"statusCode": 204}, (204, [], b"")),
        ({"statusCode": 200, "body": base64.b64encode(b"\x01").decode(), "isBase64Encoded": True}, (200, [], b"\x01")),
        ({"statusCode": "200"}, 502),
        ({"statusCode": 200, "body": {"not": "a string"}}, 502),
        ({"statusCode": 200, "body": "%%%", "isBase64Encoded": True}, 502),
    ],
)
def test_the_functions_result_as_the_http_response(result, expected):
    response = http_response(json.dumps(result))
    assert (response[0] if expected == 502 else response) == expected


def test_a_result_that_is_not_json_is_a_bad_gateway():
    assert http_response("not json")[0] == 502

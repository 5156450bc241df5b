"""`mlvault predict --model NAME FILE|-` against a function URL played by a local HTTP server: the URL found through
the stage's SSM parameter (mlvault.wiring.function_url_parameter), the request signed with SigV4 for `lambda`
(checked with the local cloud's verifier), the serve handler answering the payload format 2.0 event, and the exit
codes: 0 served, 3 a client error (its code and field) or a refused model, 1 unreachable or not authorized. The
local cloud's own function URLs: tests/e2e."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import ClassVar

import boto3
import pytest

from localcloud.function_url_payload import http_response, request_event
from localcloud.sigv4_verify import Secret, SignatureRefused, verify
from mlvault.wiring import function_url_parameter, parameter_prefix
from mlvault_tools.cli import main
from mlvault_tools.cli.base import Cloud
from tests.handlers.serve_world import SETOSA, VIRGINICA, ServeContext, serve
from tests.handlers.serve_world import env as env  # the fixtures
from tests.handlers.serve_world import out as out

URL_ID = "abcdefghijklmnopqrstuvwxyz012345"
REGION = "eu-west-1"


class FunctionUrl(BaseHTTPRequestHandler):
    """A function URL (AWS_IAM): SigV4 for `lambda` verified, then the serve handler invoked with the HTTP event."""

    secret: ClassVar[str | None] = None  # None: the caller's own secret (the session's), another: a wrong one
    seen: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, query = self.path.partition("?")
        type(self).seen.append({"path": path, "headers": headers})
        try:
            signed = verify(
                method="POST",
                raw_path=path,
                raw_query=query,
                headers=headers,
                body=body,
                service="lambda",
                region=REGION,
                secret_of=self._secret_of,
            )
        except SignatureRefused as refused:
            return self._answer(403, [("Content-Type", "application/json")], json.dumps({"Message": refused.code}))
        event = request_event(
            url_id=URL_ID,
            region=REGION,
            account="123456789012",
            method="POST",
            raw_path="/",
            raw_query=query,
            headers=headers,
            body=body,
            source_ip="127.0.0.1",
            iam={"accessKey": signed.access_key, "accountId": "123456789012", "userArn": "arn:aws:iam::1:user/t"},
        )
        try:
            result = json.dumps(serve.handler(event, ServeContext()))
        except Exception:  # noqa: BLE001 - a function error: Lambda's 502
            result = "not json"
        status, answer_headers, data = http_response(result)
        self._answer(status, answer_headers, data)

    def _secret_of(self, key: str) -> Secret | None:
        credentials = boto3.session.Session().get_credentials().get_frozen_credentials()
        if key != credentials.access_key:
            return None
        return Secret(self.secret or credentials.secret_key, credentials.token)

    def _answer(self, status: int, headers: list, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def url(env) -> Iterator[str]:
    """The model's function URL, published in the stage's SSM parameters."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FunctionUrl)
    FunctionUrl.seen = []
    FunctionUrl.secret = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"http://127.0.0.1:{server.server_address[1]}/{URL_ID}/"
    boto3.client("ssm").put_parameter(
        Name=f"{parameter_prefix('test')}{function_url_parameter('iris')}", Value=address, Type="String"
    )
    yield address
    server.shutdown()


def predict(capsys, *args: str) -> SimpleNamespace:
    code = main(["predict", "--model", "iris", "--stage", "test", *args])
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if not line.startswith("{") or "predictions" in line]
    return SimpleNamespace(code=code, out="\n".join(lines), err=captured.err)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"rows": [SETOSA, VIRGINICA]}),
        json.dumps([SETOSA, VIRGINICA]),
        json.dumps(SETOSA) + "\n\n" + json.dumps(VIRGINICA) + "\n",  # JSON Lines
    ],
    ids=["rows", "list", "json-lines"],
)
def test_predictions_are_printed_one_a_line(url, capsys, tmp_path, text):
    rows = tmp_path / "rows.json"
    rows.write_text(text)
    result = predict(capsys, str(rows))
    assert result.code == 0, result
    assert result.out.splitlines()[-2:] == ["setosa", "virginica"]
    assert "iris/3" in result.err
    assert "2 prediction(s)" in result.err
    [request] = FunctionUrl.seen
    assert request["path"] == f"/{URL_ID}/"
    assert request["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert f"/{REGION}/lambda/aws4_request" in request["headers"]["authorization"]


def test_rows_from_stdin_and_the_json_answer(url, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"rows": [VIRGINICA]})))
    result = predict(capsys, "-", "--json")
    assert result.code == 0
    answer = json.loads(result.out.splitlines()[-1])
    assert answer["predictions"] == ["virginica"]
    assert answer["model"]["id"] == "iris/3"


def test_a_client_error_exits_3_with_its_code_and_field(url, capsys, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"site": "north"}]))
    result = predict(capsys, str(rows))
    assert result.code == 3
    assert "CLIENT_ERROR MISSING_FEATURE at rows[0].petal_length: rows[0]: missing feature" in result.out


def test_input_that_is_not_json_is_a_client_error(url, capsys, tmp_path):
    rows = tmp_path / "rows.txt"
    rows.write_text('{"petal_length": 1.0}\nnot json\n')
    result = predict(capsys, str(rows))
    assert result.code == 3
    assert "CLIENT_ERROR NOT_JSON" in result.out
    assert "rows.txt:2" in result.out
    assert FunctionUrl.seen == []  # nothing was sent


def test_a_refused_model_exits_3_with_its_code(url, env, capsys, tmp_path):
    env.status("REVOKED")
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([SETOSA]))
    result = predict(capsys, str(rows))
    assert result.code == 3
    assert "REFUSED MODEL_REVOKED" in result.out


def test_a_request_the_url_refuses_exits_1(url, capsys, tmp_path):
    FunctionUrl.secret = "another secret"  # the signature no longer verifies: 403 as a function URL answers
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([SETOSA]))
    result = predict(capsys, str(rows))
    assert result.code == 1
    assert result.err.startswith("mlvault: NOT_SERVED: HTTP 403")
    assert result.out == ""


def test_an_unreachable_url_or_an_unknown_model_exits_1(env, capsys, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([SETOSA]))
    prefix = parameter_prefix("test")
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{prefix}{function_url_parameter('iris')}", Value="http://127.0.0.1:9/x/", Type="String")
    result = predict(capsys, str(rows))
    assert result.code == 1
    assert result.err == "mlvault: UNREACHABLE: cannot reach http://127.0.0.1:9/x/: connection refused\n"
    code = main(["predict", "--model", "credit", "--stage", "test", str(rows)])
    assert code == 1
    assert "publishes no 'function-url/credit'" in capsys.readouterr().err


def test_an_aws_url_is_sent_to_the_endpoint_by_host(url, env):
    """With an endpoint (the local cloud), a URL of AWS's form goes to the endpoint, its Host header (and the
    signature's host and region) the URL's own."""
    endpoint = url.rsplit("/", 2)[0]
    args = SimpleNamespace(stage="test", endpoint_url=None, region=None)
    cloud = Cloud(args)
    cloud._endpoint = endpoint  # as --endpoint-url sets it (after discovery: moto answers SSM in-process)
    aws_url = f"https://{URL_ID}.lambda-url.{REGION}.on.aws/{URL_ID}/"
    answer = cloud.signed_post(aws_url, json.dumps({"rows": [SETOSA]}).encode())
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["predictions"] == ["setosa"]
    assert FunctionUrl.seen[-1]["headers"]["host"] == f"{URL_ID}.lambda-url.{REGION}.on.aws"

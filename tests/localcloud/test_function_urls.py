"""Gap 25: Lambda function URLs on an alias answer on the local endpoint: SigV4 verified, lambda:InvokeFunctionUrl
and lambda:InvokeFunction authorized, the alias's weights applied, payload format 2.0 in and out."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections import Counter

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.localcloud.app.stack import URL_CALLER, URL_STRANGER


def web(cloud):
    return cloud.physical_id("gaps", "AWS::Lambda::Function", "Web")


def live_url(cloud):
    return cloud.client("lambda").get_function_url_config(FunctionName=web(cloud), Qualifier="live")["FunctionUrl"]


def session(cloud, role_name, name="alice"):
    arn = f"arn:aws:iam::{cloud.state['account']}:role/{role_name}"
    creds = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName=name)["Credentials"]
    return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def send(url, credentials=None, *, method="POST", body=b'{"rows": [1]}', headers=None, service="lambda", host=None):
    """An HTTP request to a URL, SigV4-signed with the credentials (for `service`) when given."""
    headers = {"content-type": "application/json", **(headers or {})}
    if host:
        headers["host"] = host
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    if credentials is not None:
        SigV4Auth(credentials, service, "eu-west-1").add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method=method)  # noqa: S310 - the local endpoint
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:  # noqa: S310 - the local endpoint
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, refused.read()


def test_urls_come_from_the_template_one_on_the_alias_one_on_the_function(byom_cloud):
    lam = byom_cloud.client("lambda")
    fn = lam.get_function_configuration(FunctionName=web(byom_cloud))["FunctionArn"]
    live = lam.get_function_url_config(FunctionName=web(byom_cloud), Qualifier="live")
    assert (live["FunctionArn"], live["AuthType"], live["InvokeMode"]) == (f"{fn}:live", "AWS_IAM", "BUFFERED")
    assert live["FunctionUrl"].startswith(f"{byom_cloud.endpoint}/")
    assert live["FunctionUrl"].endswith("/")
    assert len(live["FunctionUrl"].rstrip("/").rsplit("/", 1)[-1]) == 32  # AWS's url-id
    public = lam.get_function_url_config(FunctionName=web(byom_cloud))
    assert (public["FunctionArn"], public["AuthType"]) == (fn, "NONE")
    listed = lam.list_function_url_configs(FunctionName=web(byom_cloud))["FunctionUrlConfigs"]
    assert {c["FunctionArn"] for c in listed} == {fn, f"{fn}:live"}


def test_a_signed_request_is_answered_with_the_functions_response_and_a_2_0_event(byom_cloud):
    status, headers, body = send(
        live_url(byom_cloud) + "predict/v1?x=1&x=2&y=",
        session(byom_cloud, URL_CALLER),
        headers={"cookie": "a=1; b=2", "x-trace": "t"},
    )
    assert status == 201
    assert (headers["content-type"], headers["x-model"], headers["set-cookie"]) == (
        "application/json",
        "one",
        "session=1",
    )
    answer = json.loads(body)
    assert (answer["version"], answer["model"]) == ("1", "one")  # the alias's version
    event = answer["event"]
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "$default", "/predict/v1")
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-trace"] == "t"
    assert (event["body"], event["isBase64Encoded"]) == ('{"rows": [1]}', False)
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/predict/v1"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["domainName"] == f"{context['apiId']}.lambda-url.eu-west-1.on.aws"
    assert (context["stage"], context["accountId"]) == ("$default", byom_cloud.state["account"])
    iam = context["authorizer"]["iam"]
    assert iam["userArn"] == f"arn:aws:sts::{byom_cloud.state['account']}:assumed-role/{URL_CALLER}/alice"
    assert iam["accessKey"].startswith("ASIA")
    assert iam["callerId"].endswith(":alice")

    binary = send(
        live_url(byom_cloud),
        session(byom_cloud, URL_CALLER),
        body=b"\x00\xff",
        headers={"content-type": "application/octet-stream"},
    )
    event = json.loads(binary[2])["event"]
    assert (base64.b64decode(event["body"]), event["isBase64Encoded"]) == (b"\x00\xff", True)


def test_the_aws_host_form_of_the_url_is_served_too(byom_cloud):
    url = live_url(byom_cloud)
    url_id = url.rstrip("/").rsplit("/", 1)[-1]
    host = f"{url_id}.lambda-url.eu-west-1.on.aws"
    status, _, body = send(f"{byom_cloud.endpoint}/path", session(byom_cloud, URL_CALLER), host=host)
    assert status == 201
    assert json.loads(body)["event"]["rawPath"] == "/path"


def refusal(response):
    status, headers, body = response
    return status, headers.get("x-amzn-ErrorType"), json.loads(body)


def test_an_unsigned_or_wrongly_signed_request_is_refused(byom_cloud):
    url = live_url(byom_cloud)
    assert refusal(send(url)) == (403, "AccessDeniedException", {"Message": "Forbidden"})
    good = session(byom_cloud, URL_CALLER)
    wrong_secret = Credentials(good.access_key, "not-the-secret", good.token)
    status, error, body = refusal(send(url, wrong_secret))
    assert (status, error) == (403, "InvalidSignatureException")
    assert body["message"].startswith("The request signature we calculated does not match the signature you provided")
    request = AWSRequest(method="POST", url=url, data=b'{"rows": [1]}', headers={"content-type": "application/json"})
    SigV4Auth(good, "lambda", "eu-west-1").add_auth(request)
    prepared = request.prepare()
    tampered = urllib.request.Request(url, data=b'{"rows": [2]}', headers=dict(prepared.headers), method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=30)  # noqa: S310 - the local endpoint
    assert refused.value.code == 403  # the body is not the one signed
    assert refusal(send(url, good, service="execute-api"))[2] == {
        "message": "Credential should be scoped to correct service: 'lambda'."
    }
    unknown = Credentials("AKIAUNKNOWNUNKNOWN00", "x")
    assert refusal(send(url, unknown))[1] == "UnrecognizedClientException"
    no_token = Credentials(good.access_key, good.secret_key)  # a session's key without its session token
    assert refusal(send(url, no_token))[1] == "UnrecognizedClientException"
    assert next(e["reason"] for e in byom_cloud.events("function-url-refused")) == "Forbidden"


def test_a_caller_whose_policies_do_not_allow_invoke_function_url_is_refused(byom_cloud):
    url = live_url(byom_cloud)
    assert refusal(send(url, session(byom_cloud, URL_STRANGER, "bob"))) == (
        403,
        "AccessDeniedException",
        {"Message": "Forbidden"},
    )
    (denied,) = [e for e in byom_cloud.events("access-denied") if e["principal"].endswith(f"role/{URL_STRANGER}")]
    assert denied["action"] == "lambda:InvokeFunctionUrl"
    assert denied["resource"].endswith(":live")
    developer = Credentials(
        byom_cloud.state["developer"]["access_key_id"], byom_cloud.state["developer"]["secret_access_key"]
    )
    assert send(url, developer)[0] == 201  # an administrator


def test_the_aliass_routing_weights_apply_to_its_url(byom_cloud):
    lam = byom_cloud.client("lambda")
    fn = web(byom_cloud)
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": {"MODEL": "two"}})
    version = lam.publish_version(FunctionName=fn)["Version"]
    lam.update_alias(FunctionName=fn, Name="live", RoutingConfig={"AdditionalVersionWeights": {version: 0.5}})
    try:
        caller = session(byom_cloud, URL_CALLER)
        answers = [json.loads(send(live_url(byom_cloud), caller)[2]) for _ in range(60)]
    finally:
        lam.update_alias(FunctionName=fn, Name="live", RoutingConfig={"AdditionalVersionWeights": {}})
    seen = Counter((a["version"], a["model"]) for a in answers)
    assert set(seen) == {("1", "one"), (version, "two")}, seen
    assert 15 <= seen[(version, "two")] <= 45


def test_the_functions_result_becomes_the_http_response(byom_cloud):
    public = byom_cloud.client("lambda").get_function_url_config(FunctionName=web(byom_cloud))["FunctionUrl"]
    status, headers, body = send(public + "?answer=raw", body=json.dumps({"predictions": [1, 2]}).encode())
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {"predictions": [1, 2]})
    assert send(public + "?answer=raw", body=b'"plain text"')[::2] == (200, b"plain text")
    raw = {"statusCode": 400, "body": base64.b64encode(b"bad").decode(), "isBase64Encoded": True}
    assert send(public + "?answer=raw", body=json.dumps(raw).encode())[::2] == (400, b"bad")
    assert send(public + "?answer=raw", body=json.dumps({"statusCode": "x"}).encode())[0] == 502
    assert send(public + "?answer=fail")[0] == 502  # an unhandled error of the function


def test_a_public_url_needs_both_permissions_for_anyone(byom_cloud):
    lam = byom_cloud.client("lambda")
    fn = web(byom_cloud)
    lam.create_alias(FunctionName=fn, Name="beta", FunctionVersion="1")
    url = lam.create_function_url_config(FunctionName=fn, Qualifier="beta", AuthType="NONE")["FunctionUrl"]
    assert send(url)[0] == 403  # no resource policy allows anyone
    common = {"FunctionName": fn, "Qualifier": "beta", "Principal": "*"}
    lam.add_permission(StatementId="url", Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="NONE", **common)
    assert send(url)[0] == 403  # lambda:InvokeFunction too, for URLs created since October 2025
    lam.add_permission(StatementId="invoke", Action="lambda:InvokeFunction", InvokedViaFunctionUrl=True, **common)
    assert send(url)[0] == 201
    beta = json.loads(lam.get_policy(FunctionName=fn, Qualifier="beta")["Policy"])["Statement"]  # the alias's policy
    assert {s["Sid"]: s["Condition"] for s in beta} == {
        "url": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
        "invoke": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
    }
    assert not {"url", "invoke"} & {
        s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]
    }
    lam.remove_permission(FunctionName=fn, Qualifier="beta", StatementId="invoke")
    assert send(url)[0] == 403
    lam.update_function_url_config(FunctionName=fn, Qualifier="beta", AuthType="AWS_IAM")
    assert send(url)[0] == 403  # now it must be signed


def error_of(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_url_configs_lambda_refuses(byom_cloud):
    lam = byom_cloud.client("lambda")
    fn = web(byom_cloud)
    assert error_of(lambda: lam.create_function_url_config(FunctionName=fn, Qualifier="live", AuthType="NONE")) == (
        "ResourceConflictException",
        409,
    )
    assert error_of(lambda: lam.create_function_url_config(FunctionName=fn, Qualifier="1", AuthType="NONE"))[0] == (
        "ValidationException"
    )
    assert error_of(lambda: lam.create_function_url_config(FunctionName=fn, Qualifier="nope", AuthType="NONE")) == (
        "ResourceNotFoundException",
        404,
    )
    lam.create_alias(FunctionName=fn, Name="gamma", FunctionVersion="1")
    lam.create_function_url_config(FunctionName=fn, Qualifier="gamma", AuthType="AWS_IAM")
    lam.delete_function_url_config(FunctionName=fn, Qualifier="gamma")
    assert error_of(lambda: lam.get_function_url_config(FunctionName=fn, Qualifier="gamma")) == (
        "ResourceNotFoundException",
        404,
    )

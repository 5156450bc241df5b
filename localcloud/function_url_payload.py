"""A function URL's HTTP request as the event Lambda gives the function (payload format 2.0), and the function's
result as the HTTP response Lambda answers with (gap 25, services/function_urls.py).

The event: `version` "2.0", `routeKey` and `requestContext.stage` "$default", `rawPath` (the path after the URL's
host, here after its `/<url-id>` segment), `rawQueryString` as sent, `cookies` (from the Cookie header, which is
then not among the headers), `headers` (lower-case names, repeated values joined with ","),
`queryStringParameters` (repeated values joined with ","; absent without a query), `requestContext` (accountId
"anonymous" for NONE auth, apiId, domainName `<url-id>.lambda-url.<region>.on.aws`, domainPrefix, http
{method, path, protocol, sourceIp, userAgent}, requestId, time, timeEpoch, and for AWS_IAM
`authorizer.iam` {accessKey, accountId, callerId, cognitoIdentity, principalOrgId, userArn, userId}), `body` (text
for textual content types, otherwise base64) and `isBase64Encoded`.

The response: a JSON object with `statusCode` is the response (`headers`, `cookies` as Set-Cookie, `body`,
`isBase64Encoded`); any other JSON value is a 200 `application/json` response whose body is the value (a string as
itself, anything else as its JSON). A result that is not JSON, a statusCode that is not an integer, or a body
that is not a string is Lambda's 502 "Internal Server Error"; so is an unhandled function error.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/yaml")
BAD_GATEWAY = (502, [("Content-Type", "application/json")], b'{"Message":"Internal Server Error"}')


def is_text(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in TEXT_TYPES or mime.endswith("+json") or mime.endswith("+xml")


def request_event(
    *,
    url_id: str,
    region: str,
    account: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str,
    iam: Mapping[str, Any] | None,
) -> dict[str, Any]:
    now = time.time()
    headers = dict(headers)
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    text = is_text(headers.get("content-type", ""))
    context: dict[str, Any] = {
        "accountId": account if iam is not None else "anonymous",
        "apiId": url_id,
        "domainName": f"{url_id}.lambda-url.{region}.on.aws",
        "domainPrefix": url_id,
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if iam is not None:
        context["authorizer"] = {"iam": dict(iam)}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    if body:
        if text:
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def http_response(payload: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of what the function returned."""
    try:
        value = json.loads(payload)
    except ValueError:
        return BAD_GATEWAY
    if not (isinstance(value, dict) and "statusCode" in value):
        body = value if isinstance(value, str) else json.dumps(value)
        return 200, [("Content-Type", "application/json")], body.encode()
    status = value["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return BAD_GATEWAY
    headers = [(str(k), str(v)) for k, v in (value.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(c)) for c in value.get("cookies") or []]
    body = value.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        return BAD_GATEWAY
    elif value.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            return BAD_GATEWAY
    else:
        data = body.encode()
    return status, headers, data

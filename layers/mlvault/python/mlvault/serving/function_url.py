"""The serving function reached through its Lambda function URL (`AWS_IAM` auth, on the `live` alias): the HTTP
request and response of Lambda's payload format 2.0.

Request (what Lambda hands the function; a direct invocation is `{"rows": [...]}` instead):

    {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
     "headers": {"content-type": "application/json", ...},          # lower-case names
     "requestContext": {"http": {"method": "POST", "path": "/", ...}, "authorizer": {"iam": {...}}, ...},
     "body": "{\"rows\": [...]}", "isBase64Encoded": false}

Only `POST` with a JSON body (`content-type: application/json`, or `application/<anything>+json`, any charset
parameter) is served; the body is base64-decoded when Lambda says it is encoded, then parsed as UTF-8 JSON.

Response: `{"statusCode", "headers": {"content-type": "application/json", ...}, "body": <JSON>, "isBase64Encoded":
false}`, the body being exactly what a direct invocation returns:

    200  {"predictions": [...], "model": {"id", "digest", "version"}}
    400  {"error": {"code", "field", "message", "kind": "client"}}  (request_schema's codes, and NOT_JSON)
    405  the same, code METHOD_NOT_ALLOWED (header `allow: POST`)
    415  the same, code UNSUPPORTED_MEDIA_TYPE
    503  {"error": {"code", "field": "", "message", "kind": "model"}}  the pinned model is refused (its code)

Anything else is the function failing (an exception: Lambda answers 502 and counts it in Errors). Standard library
only.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from mlvault.errors import InvalidRequest, RequestReason

PAYLOAD_VERSION = "2.0"
JSON = "application/json"
OK, CLIENT_ERROR, REFUSED = 200, 400, 503
_STATUS = {RequestReason.METHOD_NOT_ALLOWED: 405, RequestReason.UNSUPPORTED_MEDIA_TYPE: 415}
_BODY = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # json.dumps with these options, built once


def is_http(event: Any) -> bool:
    """Whether the event is a function URL's HTTP request (payload format 2.0), not a direct invocation."""
    if not isinstance(event, Mapping) or event.get("version") != PAYLOAD_VERSION:
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and isinstance(context.get("http"), Mapping)


def request_of(event: Mapping[str, Any]) -> Any:
    """The JSON request a POST carries (InvalidRequest METHOD_NOT_ALLOWED, UNSUPPORTED_MEDIA_TYPE or NOT_JSON)."""
    method = event["requestContext"]["http"].get("method")
    if method != "POST":
        raise InvalidRequest(RequestReason.METHOD_NOT_ALLOWED, f"expected POST, got {method!r}")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    given = headers.get("content-type")
    media = str(given or "").split(";", 1)[0].strip().lower()
    if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
        raise InvalidRequest(
            RequestReason.UNSUPPORTED_MEDIA_TYPE, f"expected content-type {JSON}, got {given!r}", field="content-type"
        )
    body = event.get("body") or ""
    try:
        data = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
        return json.loads(data.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise InvalidRequest(RequestReason.NOT_JSON, f"the body is not UTF-8 JSON: {type(err).__name__}") from None


def response(status: int, payload: Mapping[str, Any], *, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": JSON, **(headers or {})},
        "body": _BODY.encode(payload),
        "isBase64Encoded": False,
    }


def client_error(err: InvalidRequest, payload: Mapping[str, Any]) -> dict[str, Any]:
    """400, or 405 / 415 for the HTTP method and the media type."""
    status = _STATUS.get(err.reason, CLIENT_ERROR)
    return response(status, payload, headers={"allow": "POST"} if status == 405 else None)

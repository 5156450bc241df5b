"""No permanent error is classified as transient (issue 11, item 2), and every key derived from an ingest key is a
key S3 takes that no path normaliser resolves elsewhere."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
    UnknownServiceError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mlvault.errors import VerificationError
from mlvault.ingest.naming import (
    MAX_KEY_BYTES,
    S3_MAX_KEY_BYTES,
    lake_key_of,
    metadata_value,
    parse_ingest_key,
    quarantine_key_of,
)
from mlvault.ingest.transient import is_transient


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    "err",
    [
        EndpointConnectionError(endpoint_url="https://s3"),
        ConnectTimeoutError(endpoint_url="https://s3"),
        ReadTimeoutError(endpoint_url="https://s3"),
        ResponseStreamingError(error="reset by peer"),
        IncompleteReadError(actual_bytes=1, expected_bytes=2),
        client_error("SlowDown", 503),
        client_error("ThrottlingException", 400),
        client_error("InternalError", 500),
        client_error("Whatever", 502),
    ],
    ids=lambda e: type(e).__name__ if not isinstance(e, ClientError) else e.response["Error"]["Code"],
)
def test_what_a_retry_may_cure_is_transient(err):
    assert is_transient(err)


@pytest.mark.parametrize(
    "err",
    [
        ParamValidationError(report="Non ascii characters found in S3 metadata"),  # the non-ASCII file name
        NoCredentialsError(),
        UnknownServiceError(service_name="x", known_service_names="y"),
        client_error("AccessDenied", 403),
        client_error("KeyTooLongError", 400),
        client_error("InvalidObjectState", 403),
        ValueError("not an AWS error"),
    ],
    ids=lambda e: type(e).__name__ if not isinstance(e, ClientError) else e.response["Error"]["Code"],
)
def test_what_fails_the_same_way_every_time_is_not_transient(err):
    assert not is_transient(err)


def test_metadata_values_are_ascii_percent_encoded_utf8_cut_on_whole_characters():
    key = "producers/acme/iris/données été+100% ✓.csv"
    encoded = metadata_value(key)
    assert encoded.isascii()
    assert unquote(encoded) == key
    assert "/" in encoded  # paths stay readable
    cut = metadata_value("é" * 400, 100)
    assert len(cut) <= 100
    assert unquote(cut, errors="strict") == "é" * (len(cut) // 6)


segment = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cs"),
        blacklist_characters="/\\\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(segment, min_size=1, max_size=30),
    version=st.text("abcdefABCDEF0123456789._", min_size=32, max_size=32),
)
def test_keys_derived_from_a_valid_key_are_valid_s3_keys_in_their_own_area(segments, version):
    key = "producers/acme/iris/" + "/".join(segments)
    try:
        parsed = parse_ingest_key(key)
    except VerificationError:
        assert len(key.encode()) > MAX_KEY_BYTES  # only too long
        return
    lake = lake_key_of(key, "iris", "acme", "0" * 64)
    assert lake.startswith("datasets/iris/acme/sha256=" + "0" * 64 + "/")
    assert lake.endswith(parsed.name)
    for derived in (lake, quarantine_key_of("rejected", key, version), quarantine_key_of("held", key, version)):
        assert len(derived.encode()) <= S3_MAX_KEY_BYTES
        assert all(part not in ("", ".", "..") for part in derived.split("/"))


@given(key=st.text(min_size=0, max_size=1100), version=st.text("abc123", min_size=1, max_size=40))
def test_the_quarantine_key_of_any_key_is_safe(key, version):
    derived = quarantine_key_of("rejected", key, version)
    assert len(derived.encode("utf-8", "surrogatepass")) <= S3_MAX_KEY_BYTES
    assert all(part not in ("", ".", "..") for part in derived.split("/"))

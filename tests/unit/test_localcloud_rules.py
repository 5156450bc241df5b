"""Rules the local cloud applies as AWS does, checked without a cloud: Object Lock retention changes and the
metadata limit (gap 15), rate expressions (gap 5), Signer's embedded signatures (gap 19) and the assets the
provisioner publishes (gap 21)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from localcloud.intrinsics import UnsupportedError
from localcloud.services.eventbridge import InvalidSchedule, rate_seconds
from localcloud.services.lambda_code import MANIFEST, third_party_layer_zip
from localcloud.services.s3_lock import metadata_too_large, retention_change_refused
from localcloud.services.signing_jobs import Signer, split_comment

NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("mode", "until", "new_mode", "new_until", "bypass", "refused"),
    [
        ("COMPLIANCE", NOW + timedelta(days=2), "COMPLIANCE", NOW + timedelta(days=1), True, "cannot be shortened"),
        ("COMPLIANCE", NOW + timedelta(days=2), "GOVERNANCE", NOW + timedelta(days=9), True, "cannot be removed"),
        ("COMPLIANCE", NOW + timedelta(days=2), None, None, True, "cannot be removed"),
        ("COMPLIANCE", NOW + timedelta(days=2), "COMPLIANCE", NOW + timedelta(days=3), False, ""),
        ("COMPLIANCE", NOW - timedelta(days=1), "GOVERNANCE", NOW + timedelta(days=1), False, ""),  # expired
        ("GOVERNANCE", NOW + timedelta(days=2), "GOVERNANCE", NOW + timedelta(days=1), False, "bypass"),
        ("GOVERNANCE", NOW + timedelta(days=2), "GOVERNANCE", NOW + timedelta(days=1), True, ""),
        ("GOVERNANCE", NOW + timedelta(days=2), "COMPLIANCE", NOW + timedelta(days=2), False, ""),
        (None, None, "COMPLIANCE", NOW + timedelta(days=1), False, ""),
    ],
)
def test_retention_changes_s3_refuses(mode, until, new_mode, new_until, bypass, refused):
    as_text = until.strftime("%Y-%m-%dT%H:%M:%SZ") if until else None  # moto keeps it as text
    reason = retention_change_refused(mode, as_text, new_mode, new_until, bypass)
    assert (refused in reason) if refused else reason == ""


def test_metadata_counts_keys_without_the_prefix_and_values_in_utf8():
    assert not metadata_too_large({"x-amz-meta-k": "v" * 2047, "Content-Type": "x" * 5000})
    assert metadata_too_large({"x-amz-meta-k": "v" * 2048})
    assert metadata_too_large({"x-amz-meta-k": "é" * 1024})  # 2 bytes each: 1 + 2048


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(15 minutes)", 900), ("rate(1 hour)", 3600), ("rate(2 days)", 172800)],
)
def test_rates_aws_accepts(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "rate(1.5 hours)", "rate(2 weeks)"]
)
def test_rates_aws_refuses(expression):
    with pytest.raises(InvalidSchedule):
        rate_seconds(expression)


def test_cron_is_not_run_locally():
    with pytest.raises(UnsupportedError, match="rate"):
        rate_seconds("cron(0 3 * * ? *)")


def a_zip(content: str = "print('hi')\n") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", content)
    return buffer.getvalue()


CLAIMS = {"jobId": "j", "profileVersionArn": "arn:p/v", "platformId": "AWSLambda-SHA384-ECDSA", "expiresAt": 1}


def test_a_signature_is_embedded_in_the_zip_and_verifies():
    signer = Signer(SimpleNamespace())
    signed = signer.sign_zip(a_zip(), CLAIMS)
    assert zipfile.ZipFile(io.BytesIO(signed)).read("handler.py") == b"print('hi')\n"  # still the same zip
    claims = signer.signature_of(signed)
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert signer.signature_of(a_zip()) is None  # unsigned
    assert signer.signature_of(b"not a zip") is None


def test_a_changed_zip_or_another_signers_signature_fails_the_integrity_check():
    signer = Signer(SimpleNamespace())
    signed = signer.sign_zip(a_zip(), CLAIMS)
    with pytest.raises(ValueError, match="changed after it was signed"):
        signer.signature_of(signed.replace(b"print('hi')", b"print('HI')"))
    with pytest.raises(ValueError, match="does not verify"):
        Signer(SimpleNamespace()).signature_of(signed)  # a key this local cloud does not hold
    with pytest.raises(ValueError, match="already has a signature"):
        signer.sign_zip(signed, CLAIMS)
    unsigned, comment = split_comment(signed)
    assert comment.startswith(b"LCSIGNER1:")
    assert split_comment(unsigned) == (unsigned, b"")


def test_a_third_party_layer_is_published_as_a_zip_of_its_manifest():
    data = third_party_layer_zip({"asset": "asset.abc", "distributions": ["pyarrow-24.0.0"]})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == [MANIFEST]
        assert json.loads(archive.read(MANIFEST))["asset"] == "asset.abc"
    assert third_party_layer_zip({"asset": "asset.abc", "distributions": []}) == third_party_layer_zip(
        {"distributions": [], "asset": "asset.abc"}
    )  # deterministic: the same asset, the same object

"""The envelope decoder is strict where the protocol is, and accepts what the DSSE spec allows (issue 11, item 3).

The metadata value is base64url (RFC 4648 section 5, padded) and nothing else. Inside the DSSE envelope, `payload`
and `sig` are RFC 4648 Base64 in the standard or the URL-safe alphabet (DSSE protocol.md: verifiers MUST accept
either), `keyid` is optional and unrecognized fields are ignored (envelope.md's parsing rules). Each malformed
variant is refused with its reason code; each accepted form verifies.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlvault.errors import IngestReason, VerificationError
from mlvault.ingest.protocol import METADATA_KEY, Claim, sign, verify_envelope
from mlvault.signing.dsse import Envelope, parse_envelope
from mlvault.trust.producers import load_registry
from mlvault_tools.testkeys import claim_for, signer

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = load_registry(ROOT / "trust/dev.json")
KEY = "producers/acme/iris/f~~~~?~~??~???.csv"  # '~' and '?' put '+' and '/' in the payload's base64
BODY = b"a,b\n1,2\n"


def public_key(key):
    return key.public_key()


def check(metadata: dict[str, str], *, revoked: dict[str, datetime] | None = None):
    return verify_envelope(
        metadata,
        object_key=KEY,
        upload_time=datetime.now(UTC),
        registry=REGISTRY,
        public_key=public_key,
        revoked_at=lambda key_id: (revoked or {}).get(key_id),
    )


def reason_of(metadata: dict[str, str], **kwargs) -> str:
    with pytest.raises(VerificationError) as err:
        check(metadata, **kwargs)
    return err.value.reason


def carrying(envelope_json: str) -> dict[str, str]:
    """The metadata of an upload carrying this envelope JSON, encoded as the protocol says."""
    return {METADATA_KEY: base64.urlsafe_b64encode(envelope_json.encode()).decode()}


def with_both_alphabets(key_id: str = "acme-p256") -> tuple[Claim, Envelope]:
    """A signed envelope whose payload and signature both have at least two '+' or '/' in standard base64 (so
    that the URL-safe form differs, and one value can mix both): the nonce and the ECDSA signature are random,
    try until both do."""
    for _ in range(200):
        claim = claim_for(KEY, BODY)
        envelope = sign(claim, signer(key_id))
        encoded = [base64.b64encode(v).decode() for v in (envelope.payload, envelope.signature)]
        if all(sum(c in "+/" for c in e) >= 2 for e in encoded):
            return claim, envelope
    raise AssertionError("no envelope with both alphabets' characters in 200 tries")


CLAIM, ENVELOPE = with_both_alphabets()
STANDARD_JSON = json.loads(ENVELOPE.to_json())


def envelope_json(**changes) -> str:
    data = json.loads(json.dumps(STANDARD_JSON))
    for path, value in changes.items():
        target, _, name = path.rpartition("__")
        holder = data["signatures"][0] if target == "signature" else data
        if value is DELETE:
            del holder[name]
        else:
            holder[name] = value
    return json.dumps(data)


DELETE = object()
PAYLOAD_STD = STANDARD_JSON["payload"]
SIG_STD = STANDARD_JSON["signatures"][0]["sig"]


def url_safe(text: str) -> str:
    return text.translate(str.maketrans("+/", "-_"))


# --- what is accepted ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "sig"),
    [
        (PAYLOAD_STD, SIG_STD),
        (url_safe(PAYLOAD_STD), url_safe(SIG_STD)),
        (url_safe(PAYLOAD_STD), SIG_STD),
        (PAYLOAD_STD, url_safe(SIG_STD)),
    ],
    ids=["both-standard", "both-url-safe", "payload-url-safe", "sig-url-safe"],
)
def test_payload_and_sig_in_either_alphabet_verify(payload, sig):
    verified = check(carrying(envelope_json(payload=payload, signature__sig=sig)))
    assert verified.claim == CLAIM
    assert verified.key.id == "acme-p256"


def test_unrecognized_fields_are_ignored_as_dsse_requires():
    data = json.loads(envelope_json())
    data["x-producer-tool"] = {"name": "foreign-signer", "version": 3}
    data["signatures"][0]["cert"] = None
    assert check(carrying(json.dumps(data))).claim == CLAIM


@pytest.mark.parametrize("keyid", [DELETE, "", None], ids=["unset", "empty", "null"])
@pytest.mark.parametrize("key_id", ["acme-p256", "acme-ed25519"])
def test_without_keyid_the_producers_registered_keys_are_tried(keyid, key_id):
    claim = claim_for(KEY, BODY)
    envelope = sign(claim, signer(key_id))
    data = json.loads(envelope.to_json())
    if keyid is DELETE:
        del data["signatures"][0]["keyid"]
    else:
        data["signatures"][0]["keyid"] = keyid
    verified = check(carrying(json.dumps(data)))
    assert (verified.key.id, verified.claim) == (key_id, claim)


def test_without_keyid_the_key_found_is_still_checked_for_validity_and_revocation():
    def keyless(key_id: str) -> dict[str, str]:
        return carrying(replace(sign(claim_for(KEY, BODY), signer(key_id)), keyid="").to_json())

    assert reason_of(keyless("acme-old-p256")) == IngestReason.KEY_EXPIRED
    revoked = {"acme-ed25519": datetime(2026, 1, 2, tzinfo=UTC)}
    assert reason_of(keyless("acme-ed25519"), revoked=revoked) == IngestReason.KEY_REVOKED
    # another producer's key never verifies for acme, keyid or not
    assert reason_of(keyless("globex-p256")) == IngestReason.INVALID_SIGNATURE
    assert reason_of(keyless("mallory-p256")) == IngestReason.INVALID_SIGNATURE


def test_an_envelope_written_without_keyid_leaves_it_out():
    assert "keyid" not in json.loads(replace(ENVELOPE, keyid="").to_json())["signatures"][0]


# --- what is refused, and why ----------------------------------------------------------------------------------

GOOD = carrying(envelope_json())[METADATA_KEY]


def standard_alphabet(value: str) -> str:
    """The same bytes in the standard alphabet: differs from `value` when it has '-' or '_'."""
    return value.translate(str.maketrans("-_", "+/"))


def good_with_url_chars() -> str:
    """A valid metadata value with '-' or '_' in it (so that its standard-alphabet twin differs)."""
    for extra in range(64):
        data = json.loads(envelope_json())
        data["pad"] = "?~" * extra  # an ignored field whose characters put '-' and '_' in the encoding
        value = carrying(json.dumps(data))[METADATA_KEY]
        if set(value) & set("-_"):
            return value
    raise AssertionError("no value with URL-safe characters")


URL_CHARS = good_with_url_chars()


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (standard_alphabet(URL_CHARS), "'[+/]' is not a character of the url-safe base64 alphabet"),
        (GOOD[:10] + "*" + GOOD[10:], "'\\*' is not a character"),  # junk a lenient decoder drops
        (GOOD[:10] + "." + GOOD[10:], "'\\.' is not a character"),
        (GOOD[:10] + " " + GOOD[10:], "' ' is not a character"),  # whitespace
        (GOOD[:40] + "\n" + GOOD[40:], "'\\\\n' is not a character"),  # a line break (MIME base64)
        (GOOD.rstrip("=") if GOOD.endswith("=") else GOOD + "==", "padded"),  # padding missing or wrong
        (GOOD + "=", "padded"),  # excess padding
        (GOOD[:8] + "=" + GOOD[8:], "'=' is not a character"),  # padding inside
        ("%%%not-base64%%%", "'%' is not a character"),
        ("", "not JSON"),
    ],
    ids=[
        "standard-alphabet",
        "junk-star",
        "junk-dot",
        "space",
        "line-break",
        "wrong-padding",
        "excess-padding",
        "padding-inside",
        "not-base64",
        "empty",
    ],
)
def test_the_metadata_value_must_be_exact_base64url(value, detail):
    with pytest.raises(VerificationError, match=detail) as err:
        check({METADATA_KEY: value})
    assert err.value.reason == IngestReason.MALFORMED_ENVELOPE


def test_the_metadata_value_without_those_defects_is_accepted():
    assert check({METADATA_KEY: GOOD}).claim == CLAIM
    assert check({METADATA_KEY: URL_CHARS}).claim == CLAIM  # with '-' or '_' in it (and an ignored field)


def test_non_canonical_pad_bits_are_refused():
    from mlvault.signing.dsse import URL_SAFE, b64decode_strict

    assert b64decode_strict("QQ==", URL_SAFE) == b"A"
    with pytest.raises(ValueError, match="canonical"):
        b64decode_strict("QR==", URL_SAFE)  # also decodes to b"A" in lenient decoders
    whole = carrying(envelope_json())[METADATA_KEY]
    last = whole.rstrip("=")
    if whole.endswith("="):  # flip the unused low bits of the last character before the padding
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        bumped = last[:-1] + alphabet[alphabet.index(last[-1]) + 1] + whole[len(last) :]
        assert reason_of({METADATA_KEY: bumped}) == IngestReason.MALFORMED_ENVELOPE


def mixed(text: str) -> str:
    """The first '+' or '/' kept, every later one turned URL-safe: one value in two alphabets."""
    index = next(i for i, c in enumerate(text) if c in "+/")
    return text[: index + 1] + url_safe(text[index + 1 :])


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"payload": PAYLOAD_STD.rstrip("=") or PAYLOAD_STD + "="}, "payload is not RFC 4648"),
        ({"payload": PAYLOAD_STD[:20] + "\n" + PAYLOAD_STD[20:]}, "payload is not RFC 4648"),
        ({"payload": PAYLOAD_STD[:20] + "!" + PAYLOAD_STD[20:]}, "payload is not RFC 4648"),
        ({"signature__sig": SIG_STD[:10] + " " + SIG_STD[10:]}, "sig is not RFC 4648"),
        ({"signature__sig": SIG_STD + "="}, "sig is not RFC 4648"),
        ({"payload": 12}, "payload must be a base64 string"),
        ({"signature__sig": None}, "sig must be a base64 string"),
        ({"payload": DELETE}, "lacks payload"),
        ({"payloadType": DELETE}, "lacks payloadType"),
        ({"signatures": DELETE}, "lacks signatures"),
        ({"signature__sig": DELETE}, "lacks sig"),
        ({"signature__keyid": 7}, "keyid must be a string"),
        ({"payloadType": "application/json"}, "payloadType must be"),
        ({"signatures": []}, "exactly one signature"),
    ],
    ids=[
        "payload-padding",
        "payload-line-break",
        "payload-junk",
        "sig-space",
        "sig-excess-padding",
        "payload-not-string",
        "sig-null",
        "no-payload",
        "no-payloadType",
        "no-signatures",
        "no-sig",
        "keyid-not-string",
        "other-payload-type",
        "no-signature",
    ],
)
def test_each_malformed_envelope_is_refused_with_its_reason(changes, detail):
    with pytest.raises(VerificationError, match=detail) as err:
        check(carrying(envelope_json(**changes)))
    assert err.value.reason == IngestReason.MALFORMED_ENVELOPE


@pytest.mark.parametrize("field", ["payload", "signature__sig"])
def test_one_value_in_two_alphabets_is_refused(field):
    value = mixed(PAYLOAD_STD if field == "payload" else SIG_STD)
    assert set(value) & set("+/")
    assert set(value) & set("-_")
    assert reason_of(carrying(envelope_json(**{field: value}))) == IngestReason.MALFORMED_ENVELOPE


def test_duplicate_field_names_are_refused_in_the_envelope_and_the_statement():
    text = envelope_json()
    doubled = text[:-1] + ', "payloadType": "application/vnd.in-toto+json"}'
    with pytest.raises(VerificationError, match="duplicate field 'payloadType'") as err:
        check(carrying(doubled))
    assert err.value.reason == IngestReason.MALFORMED_ENVELOPE
    # a statement naming two subjects' names: one parser would read the first, another the last
    statement = CLAIM.statement()
    forged = statement.replace(b'"name":', b'"name":"producers/acme/iris/other.csv","name":', 1)
    signed = sign_payload(forged)
    with pytest.raises(VerificationError, match="duplicate field 'name'") as err:
        check(carrying(signed.to_json()))
    assert err.value.reason == IngestReason.MALFORMED_STATEMENT


def sign_payload(payload: bytes) -> Envelope:
    from mlvault.signing.dsse import PAYLOAD_TYPE, pae

    acme = signer("acme-p256")
    return Envelope(PAYLOAD_TYPE, payload, "acme-p256", acme.sign(pae(PAYLOAD_TYPE, payload)))


def test_parse_envelope_keeps_the_exact_bytes_it_verified():
    parsed = parse_envelope(envelope_json(payload=url_safe(PAYLOAD_STD), signature__sig=url_safe(SIG_STD)))
    assert (parsed.payload, parsed.signature, parsed.keyid) == (ENVELOPE.payload, ENVELOPE.signature, "acme-p256")

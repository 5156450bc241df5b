"""The grammar of ingest object keys, and the lake keys, quarantine keys and S3 metadata values derived from them
(docs/signing.md section 1).

    key       = "producers/" producer "/" dataset "/" file-name      ; at most 900 bytes of UTF-8
    producer  = dataset = [a-z0-9][a-z0-9-]{1,62}
    file-name = segment *( "/" segment )
    segment   = 1*character, but not "." nor ".."
    character = any Unicode character but "/", "\\", the controls (U+0000-U+001F, U+007F-U+009F) and the
                bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)
                and lone surrogates

Keys are compared byte for byte, never normalised. Every key derived from a valid key is valid too: the lake key
(71 bytes longer) and the quarantine key (the version id longer) stay within S3's 1024 bytes and hold no segment a
path normaliser would resolve into another producer's or dataset's area.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import quote

from mlvault.errors import IngestReason, VerificationError
from mlvault.trust.producers import ID_PATTERN

MAX_KEY_BYTES = 900
S3_MAX_KEY_BYTES = 1024
_ID = ID_PATTERN.pattern.strip("^$")
_LAYOUT = re.compile(rf"producers/(?P<producer>{_ID})/(?P<dataset>{_ID})/(?P<name>.*)", re.DOTALL)
_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@dataclass(frozen=True)
class IngestKey:
    producer: str
    dataset: str
    name: str  # the file name: one or more segments


def parse_ingest_key(key: str) -> IngestKey:
    """The producer, dataset and file name of a valid ingest key; INVALID_OBJECT_KEY (saying why) otherwise."""

    def invalid(why: str) -> VerificationError:
        return VerificationError(IngestReason.INVALID_OBJECT_KEY, f"object key {key!r} {why}")

    layout = _LAYOUT.fullmatch(key)
    if not layout:
        raise invalid("is not producers/<producer>/<dataset>/<file name>")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise invalid(f"is {size} bytes of UTF-8; at most {MAX_KEY_BYTES}")
    for segment in layout["name"].split("/"):
        if segment in ("", ".", ".."):
            raise invalid(f"has {'an empty' if not segment else 'a ' + repr(segment)} segment in its file name")
        forbidden = _FORBIDDEN.search(segment)
        if forbidden:
            raise invalid(f"has the forbidden character U+{ord(forbidden.group()):04X} in its file name")
    return IngestKey(layout["producer"], layout["dataset"], layout["name"])


def producer_of(key: str) -> str | None:
    """The producer whose prefix a key is under (producers/<producer>/...), valid or not otherwise."""
    found = re.match(rf"producers/({_ID})/", key)
    return found.group(1) if found else None


def valid_ingest_key(key: str) -> IngestKey | None:
    try:
        return parse_ingest_key(key)
    except VerificationError:
        return None


def lake_key_of(ingest_key: str, dataset: str, producer: str, digest: str) -> str:
    """Content-addressed: a lake key never holds two different contents. The ingest key must be valid."""
    return f"datasets/{dataset}/{producer}/sha256={digest}/{parse_ingest_key(ingest_key).name}"


def quarantine_key_of(area: str, ingest_key: str, version_id: str) -> str:
    """Where a rejected (area `rejected`) or held (`held`) version is copied: `<area>/<ingest key>/<version id>`
    for a valid key; `<area>/invalid-key/sha256=<SHA-256 of the key>/<version id>` for any other key (one with
    `..` segments or control characters, or too long), so that a quarantine key is always a valid S3 key that no
    path normaliser resolves elsewhere. The ledger record names the key it was copied to."""
    readable = f"{area}/{ingest_key}/{version_id}"
    if valid_ingest_key(ingest_key) is not None and len(readable.encode()) <= S3_MAX_KEY_BYTES:
        return readable
    digest = hashlib.sha256(ingest_key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{area}/invalid-key/sha256={digest}/{quote(version_id, safe='')[:900]}"


def metadata_value(text: str, limit: int = 1024) -> str:
    """A value S3 user metadata can carry (ASCII only): percent-encoded UTF-8 (RFC 3986: every byte but the
    unreserved characters and "/" as %XX; decode with urllib.parse.unquote), cut at `limit` characters on a
    whole escape (the ledger record holds the whole value)."""
    encoded = quote(text, safe="/")
    if len(encoded) <= limit:
        return encoded
    pieces, size = [], 0
    for character in text:
        piece = quote(character, safe="/")
        if size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)

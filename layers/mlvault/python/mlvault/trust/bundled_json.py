"""Reading the JSON documents bundled with a function's signed code (the trust anchors, the serving document, a
serving function's own model): one strict reader, so each document fails closed the same way.

A `BundledDocument` names the document (its bundle path) and the reason codes of its refusals; it reads at most
`max_bytes` of the file (missing: the `missing` code), refuses what is not UTF-8 JSON, duplicate keys at any depth,
an object without exactly its documented fields, and lists of names that are empty, repeated or not printable (the
`malformed` code, the detail naming the field). Standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mlvault.errors import TrustAnchorError

PRINTABLE_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,255}")  # a function, alias, lock or alarm name: printable, bounded


@dataclass(frozen=True)
class BundledDocument:
    path: str  # its path in the bundle (mlvault.wiring.Bundle), named in every refusal
    missing: str  # the reason code of a missing file
    malformed: str  # the reason code of anything else wrong with it
    max_bytes: int = 64 * 1024

    def read(self, path: Path) -> Any:
        """The parsed document at `path` (TrustAnchorError: missing, too large, not JSON, duplicate keys)."""
        try:
            with path.open("rb") as file:
                data = file.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise TrustAnchorError(self.missing, f"no {self.path} in the function's bundle") from None
        return self.parse(data)

    def parse(self, data: bytes) -> Any:
        if len(data) > self.max_bytes:
            self.fail("", f"expected at most {self.max_bytes} bytes")
        try:
            return json.loads(data.decode("utf-8"), object_pairs_hook=self._no_duplicates)
        except (UnicodeDecodeError, ValueError) as err:  # a duplicate key raises TrustAnchorError through it
            self.fail("", f"expected a JSON object, got {err}")

    def fields(self, value: Any, fields: set[str], where: str) -> dict[str, Any]:
        """`value` as an object of exactly `fields`."""
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {type(value).__name__}")
        missing, unknown = fields - set(value), set(value) - fields
        if missing or unknown:
            self.fail(
                where,
                f"expected exactly the fields {sorted(fields)}, missing {sorted(missing)}, unknown {sorted(unknown)}",
            )
        return value

    def text(self, value: Any, where: str, pattern: re.Pattern[str] = PRINTABLE_NAME, what: str = "a name") -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.fail(where, f"expected {what} ({pattern.pattern}), got {value!r}")
        return value

    def names(self, value: Any, where: str, what: str = "alarm") -> tuple[str, ...]:
        """A non-empty list of distinct printable names (of `what`: alarms)."""
        if not isinstance(value, list) or not value:
            self.fail(where, f"expected a non-empty list of {what} names, got {value!r}")
        for name in value:
            if not isinstance(name, str) or not PRINTABLE_NAME.fullmatch(name):
                self.fail(where, f"expected {what} names (1-255 printable characters), got {name!r}")
        if len(set(value)) != len(value):
            self.fail(where, f"expected each {what} once, got {value!r}")
        return tuple(value)

    def fail(self, where: str, detail: str) -> NoReturn:
        raise TrustAnchorError(self.malformed, f"{self.path}: {where}: {detail}" if where else f"{self.path}: {detail}")

    def _no_duplicates(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            self.fail("", f"duplicate fields {sorted({n for n in names if names.count(n) > 1})}")
        return dict(pairs)

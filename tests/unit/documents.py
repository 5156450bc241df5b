"""Building the bad variants of a good JSON document, for the tests of strict document readers."""

from __future__ import annotations

import copy
import json
from typing import Any


def changed(document: dict[str, Any], path: str, value: Any) -> bytes:
    """`document` as JSON bytes with the field at the dotted `path` set to `value` (KeyError: removed)."""
    document = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = document
    for name in parents:
        target = target[name]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return json.dumps(document).encode()

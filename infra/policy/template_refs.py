"""What mlvault's own rules read in the synthesized templates: resources by type, their properties, policy
statements, and references, also across stacks (a `Fn::ImportValue` of another stack's export is followed to the
resource the export names). Pure functions over JSON; no CDK.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Violation:
    rule: str
    stack: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.stack}/{self.resource}: {self.message}"


def resources(template: Mapping[str, Any], type_: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == type_:
            yield logical_id, resource


def props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return resource.get("Properties") or {}


def metadata(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return resource.get("Metadata") or {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def refers_to(value: Any, logical_id: str) -> bool:
    """True when a CloudFormation value is Ref / GetAtt of the logical id."""
    if isinstance(value, Mapping):
        if value.get("Ref") == logical_id:
            return True
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and att and att[0] == logical_id:
            return True
    return False


def mentions(value: Any, logical_id: str) -> bool:
    """True when a value refers to the logical id anywhere, including through a cross-stack export name."""
    return logical_id in json.dumps(value)


def action_matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), str(pattern).lower())


def statements(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    return [s for s in as_list(document.get("Statement", [])) if isinstance(s, Mapping)]


def is_everyone(principal: Any) -> bool:
    return principal == "*" or (isinstance(principal, Mapping) and principal.get("AWS") == "*")


@dataclass(frozen=True)
class Target:
    """The resource a value refers to: its stack, logical id, and the attribute (None for a Ref)."""

    stack: str
    logical_id: str
    attribute: str | None

    def resource(self, templates: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
        return templates[self.stack].get("Resources", {}).get(self.logical_id) or {}


class References:
    """Resolves Ref, GetAtt and Fn::ImportValue (of an export of any of the templates) to the resource meant."""

    def __init__(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        self.templates = templates
        self._exports: dict[str, tuple[str, Any]] = {}
        for stack, template in templates.items():
            for output in (template.get("Outputs") or {}).values():
                name = (output.get("Export") or {}).get("Name")
                if isinstance(name, str):
                    self._exports[name] = (stack, output.get("Value"))

    def target(self, stack: str, value: Any) -> Target | None:
        """What `value` (in `stack`'s template) refers to, or None when it is not a plain reference."""
        for _ in range(8):  # an export's value may itself be an import (re-exported references)
            if not isinstance(value, Mapping) or len(value) != 1:
                return None
            if isinstance(value.get("Ref"), str):
                return Target(stack, value["Ref"], None)
            att = value.get("Fn::GetAtt")
            if isinstance(att, list) and len(att) == 2 and all(isinstance(a, str) for a in att):
                return Target(stack, att[0], att[1])
            name = value.get("Fn::ImportValue")
            if not isinstance(name, str) or name not in self._exports:
                return None
            stack, value = self._exports[name]
        return None

    def resource_type(self, target: Target | None) -> str | None:
        return target.resource(self.templates).get("Type") if target else None

"""CloudFormation intrinsic functions, resolved against what the local cloud has provisioned.

Supported: Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::ImportValue, Fn::Select, Fn::Split. Anything else fails
loudly with its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")
NO_VALUE = object()


class UnsupportedError(RuntimeError):
    """The template uses something the local cloud does not support. Never silently ignored."""


@dataclass
class Scope:
    """What one stack's intrinsics resolve against."""

    stack_name: str
    account: str
    region: str
    parameters: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)  # logical id -> Ref value
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> GetAtt values
    exports: Mapping[str, Any] = field(default_factory=dict)  # export name -> value (all stacks)

    def pseudo(self, name: str) -> Any:
        values = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/local",
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise UnsupportedError(f"pseudo parameter {name}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.refs:
            raise UnsupportedError(f"Ref to {name!r}, which is not provisioned (yet) in {self.stack_name}")
        return self.refs[name]

    def get_att(self, logical_id: str, attribute: str) -> Any:
        attributes = self.attributes.get(logical_id)
        if attributes is None:
            raise UnsupportedError(f"Fn::GetAtt on {logical_id!r}, which is not provisioned in {self.stack_name}")
        if attribute not in attributes:
            raise UnsupportedError(f"Fn::GetAtt {logical_id}.{attribute} (attribute not supported locally)")
        return attributes[attribute]


def resolve(value: Any, scope: Scope) -> Any:
    """Resolve every intrinsic in a template value; AWS::NoValue removes the key or list item."""
    if isinstance(value, list):
        items = [resolve(v, scope) for v in value]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            return scope.ref(arg)
        if name.startswith("Fn::") or name == "Condition":
            return _function(name, arg, scope)
    resolved = {k: resolve(v, scope) for k, v in value.items()}
    return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def _function(name: str, arg: Any, scope: Scope) -> Any:
    if name == "Fn::GetAtt":
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        return scope.get_att(logical_id, resolve(attribute, scope))
    if name == "Fn::Join":
        delimiter, items = arg
        return delimiter.join(str(v) for v in resolve(items, scope))
    if name == "Fn::Sub":
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1], scope))
        return _substitute(template, variables, scope)
    if name == "Fn::ImportValue":
        export = resolve(arg, scope)
        if export not in scope.exports:
            raise UnsupportedError(f"Fn::ImportValue {export!r}: no stack exports it (deploy order?)")
        return scope.exports[export]
    if name == "Fn::Select":
        index, items = resolve(arg, scope)
        return items[int(index)]
    if name == "Fn::Split":
        delimiter, source = resolve(arg, scope)
        return source.split(delimiter)
    raise UnsupportedError(f"intrinsic function {name}")


def _substitute(template: str, variables: Mapping[str, Any], scope: Scope) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return str(scope.get_att(logical_id, attribute))
        return str(scope.ref(name))

    return _SUB_VAR.sub(replace, template).replace("${!", "${")


def dependencies(value: Any) -> set[str]:
    """Logical ids a template value refers to (Ref, GetAtt, Sub variables), pseudo parameters excluded."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= dependencies(v)
    elif isinstance(value, dict):
        for name, arg in value.items():
            if name == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif name == "Fn::GetAtt":
                found.add(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
            elif name == "Fn::Sub":
                template = arg if isinstance(arg, str) else arg[0]
                found |= {m.split(".", 1)[0] for m in _SUB_VAR.findall(template)}
                if not isinstance(arg, str):
                    found |= dependencies(arg[1])
            else:
                found |= dependencies(arg)
    return {d for d in found if not d.startswith("AWS::")}

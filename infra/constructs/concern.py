"""Concerns: the constructs a stateless stack is composed of (the verifier, the serving function, the model
pipeline...), and the stack that composes them.

A concern's id names it in the construct tree (paths, cdk-nag reports), not in CloudFormation: the resources in
it keep the logical ids they would have as children of the stack. Grouping resources into concerns, or moving one
from a concern to another, therefore never replaces a deployed resource. That matters beyond churn: many of them
have fixed names (log groups, alarms, the dashboard, the state machine, producer roles, SSM parameters), and
CloudFormation cannot replace a named resource (it creates the new one first: the name is taken). The price is
that ids inside concerns must be unique in their stack; a clash fails synth ("section 'Resources' already
contains ...").
"""

from __future__ import annotations

import hashlib
import re

from aws_cdk import CfnElement, Stack
from constructs import Construct

# CDK's addressing scheme (aws-cdk-lib core, private/uniqueid.ts), applied to the path without the concerns.
_HIDDEN = "Default"  # left out of the path entirely
_HIDDEN_FROM_HUMAN = "Resource"  # left out of the readable part only
_HASH_LEN = 8
_MAX_HUMAN_LEN = 240
_MAX_ID_LEN = 255


class Concern(Construct):
    """One concern of a stateless stack: its resources, their grants and their acknowledgements."""


class ComposedStack(Stack):
    """A stack composed of concerns: logical ids are allocated as if every concern's resources were its own."""

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        scopes = cfn_element.node.scopes
        inner = scopes[next(i for i, scope in enumerate(scopes) if scope is self) + 1 :]
        if not any(isinstance(scope, Concern) for scope in inner):
            return super()._allocate_logical_id(cfn_element)
        return logical_id([scope.node.id for scope in inner if not isinstance(scope, Concern)])


def logical_id(components: list[str]) -> str:
    """The logical id CDK allocates to the element at this path below its stack."""
    components = [c for c in components if c != _HIDDEN]
    if len(components) == 1 and len(_alphanumeric(components[0])) <= _MAX_ID_LEN:
        return _alphanumeric(components[0])
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()
    human: list[str] = []
    for component in components:  # CDK drops a component that the previous one ends with
        if not human or not human[-1].endswith(component):
            human.append(component)
    readable = "".join(_alphanumeric(c) for c in human if c != _HIDDEN_FROM_HUMAN)[:_MAX_HUMAN_LEN]
    return readable + digest[:_HASH_LEN].upper()


def _alphanumeric(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)

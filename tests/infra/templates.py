"""Reading the synthesized templates in the model tests: state machine definitions, signed bundles, asset sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.infra.test_ingest_stack import of_type

TOKEN = "<token>"


def state_machine(template: dict, name: str) -> dict:
    """The state machine named `name` (its StateMachineName)."""
    (machine,) = [
        m
        for m in of_type(template, "AWS::StepFunctions::StateMachine").values()
        if m["Properties"]["StateMachineName"] == name
    ]
    return machine


def definition(machine: dict) -> dict[str, Any]:
    """The definition as JSON, each deploy-time token replaced by TOKEN."""
    body = machine["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return json.loads("".join(p if isinstance(p, str) else TOKEN for p in parts))


def logical_id_of(template: dict, type_: str, prefix: str) -> str:
    (found,) = [k for k in of_type(template, type_) if k.startswith(prefix)]
    return found


def signed_bundle(template: dict, function_prefix: str) -> dict[str, Any]:
    """The documents the signer writes into a function's zip (its signed-code resource's Bundle)."""
    function_id = logical_id_of(template, "AWS::Lambda::Function", function_prefix)
    (signed_id, attribute) = template["Resources"][function_id]["Properties"]["Code"]["S3Key"]["Fn::GetAtt"]
    assert attribute == "Key"
    return template["Resources"][signed_id]["Properties"].get("Bundle", {})


def environment(template: dict, function_prefix: str) -> dict[str, Any]:
    function_id = logical_id_of(template, "AWS::Lambda::Function", function_prefix)
    return template["Resources"][function_id]["Properties"].get("Environment", {}).get("Variables", {})


def layer_packages(outdir: Path, template: dict, function_prefix: str) -> dict[str, set[str]]:
    """The top-level packages (python/<name>, dist-info and .libs folders left out) of each of a function's layers,
    read from the layer assets in the cloud assembly; by layer logical id."""
    from infra.policy.lambda_rules import assembly_assets

    assets = assembly_assets(outdir)
    function_id = logical_id_of(template, "AWS::Lambda::Function", function_prefix)
    found: dict[str, set[str]] = {}
    for layer in template["Resources"][function_id]["Properties"].get("Layers", []):
        layer_id = layer["Ref"]
        (signed_id, _) = template["Resources"][layer_id]["Properties"]["Content"]["S3Key"]["Fn::GetAtt"]
        source = assets[template["Resources"][signed_id]["Properties"]["SourceKey"]]
        python = source / "python"
        found[layer_id] = {
            p.name.removesuffix(".py")
            for p in python.iterdir()
            if not p.name.endswith((".dist-info", ".libs")) and p.name not in ("__pycache__", "bin")
        }
    return found

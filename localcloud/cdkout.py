"""Reading a cloud assembly (cdk.out): stacks in deployment order, their templates and file assets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AssemblyError(RuntimeError):
    """The cloud assembly is missing, stale or not something the local cloud can deploy."""


@dataclass(frozen=True)
class StackArtifact:
    name: str
    region: str
    template: dict[str, Any]
    execution_role_arn: str
    dependencies: tuple[str, ...]
    # asset object key (as in Code.S3Key / Content.S3Key) -> directory of the asset in cdk.out
    assets: dict[str, Path] = field(default_factory=dict)


def load_assembly(outdir: Path) -> list[StackArtifact]:
    """The assembly's CloudFormation stacks, dependencies first."""
    outdir = outdir.resolve()
    manifest_path = outdir / "manifest.json"
    if not manifest_path.is_file():
        raise AssemblyError(f"no cloud assembly at {outdir} (run `make synth` first)")
    manifest = json.loads(manifest_path.read_text())
    artifacts = manifest.get("artifacts", {})
    stacks: dict[str, StackArtifact] = {}
    for name, artifact in artifacts.items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        props = artifact["properties"]
        environment = artifact.get("environment", "")
        region = environment.rsplit("/", 1)[-1]
        if not region or region.startswith("unknown"):
            raise AssemblyError(f"stack {name} has no explicit region ({environment!r}); set it in cdk.json")
        assets: dict[str, Path] = {}
        for dep in artifact.get("dependencies", []):
            dep_artifact = artifacts.get(dep, {})
            if dep_artifact.get("type") == "cdk:asset-manifest":
                assets.update(_file_assets(outdir, dep_artifact["properties"]["file"]))
        stacks[name] = StackArtifact(
            name=name,
            region=region,
            template=json.loads((outdir / props["templateFile"]).read_text()),
            execution_role_arn=props.get("cloudFormationExecutionRoleArn", ""),
            dependencies=tuple(
                d
                for d in artifact.get("dependencies", [])
                if artifacts.get(d, {}).get("type") == "aws:cloudformation:stack"
            ),
            assets=assets,
        )
    return _ordered(stacks)


def is_third_party_layer(asset_dir: Path) -> bool:
    """A layer asset pip built (python/*.dist-info): its wheels target Lambda's Python, so the local cloud runs
    handlers against the venv's copies of these packages instead (GUIDE.md section 7)."""
    return asset_dir.is_dir() and any((asset_dir / "python").glob("*.dist-info"))


def _file_assets(outdir: Path, manifest_file: str) -> dict[str, Path]:
    manifest = json.loads((outdir / manifest_file).read_text())
    assets = {}
    for entry in manifest.get("files", {}).values():
        source = outdir / entry["source"]["path"]
        for destination in entry.get("destinations", {}).values():
            assets[destination["objectKey"]] = source
    return assets


def _ordered(stacks: dict[str, StackArtifact]) -> list[StackArtifact]:
    ordered: list[StackArtifact] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            raise AssemblyError(f"stack dependency cycle: {' -> '.join((*path, name))}")
        for dep in stacks[name].dependencies:
            visit(dep, (*path, name))
        seen.add(name)
        ordered.append(stacks[name])

    for name in stacks:
        visit(name, ())
    return ordered

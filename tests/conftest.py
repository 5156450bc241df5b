"""Shared fixtures. The CDK app is synthesized once per pytest run (jsii start-up costs seconds)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """The context of cdk.json (stages and feature flags), as `cdk synth` passes it."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context.update(overrides)
    return context


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    templates: dict[str, dict[str, Any]]
    settings: Any
    validation_report: dict[str, Any]

    def template(self, suffix: str) -> dict[str, Any]:
        (name,) = [n for n in self.templates if n.endswith(suffix)]
        return self.templates[name]


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Synthesized:
    """The app as `cdk synth` writes it, synthesized once per run: under pytest-xdist the first worker to ask
    synthesizes into the run's shared temporary directory and the others read that cloud assembly (no test writes
    into it)."""
    import fcntl

    from aws_cdk import App, cx_api

    from infra.assembly import build
    from infra.policy.rules import assembly_templates
    from infra.settings import load_settings

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    outdir, done = shared / "cdk.out-shared", shared / "cdk.out-shared.done"
    with (shared / "cdk.out-shared.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while one worker synthesizes; the others wait, then read
        if not done.exists():
            app = App(context=cdk_context(), outdir=str(outdir))
            build(app)
            app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
            done.write_text("synthesized")
    assembly = cx_api.CloudAssembly(str(outdir))
    return Synthesized(
        outdir=outdir,
        templates=assembly_templates(assembly),
        settings=load_settings(cdk_context()),
        validation_report=json.loads((outdir / "validation-report.json").read_text()),
    )


E2E_DIRS = ("e2e", "localcloud")  # the tests that bring up a local cloud (or the synthesized app on one)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e and tests/localcloud is marked `e2e`: `pytest -m "not e2e"` runs the fast part."""
    for item in items:
        parts = Path(item.fspath).relative_to(ROOT / "tests").parts
        if parts[0] in E2E_DIRS:
            item.add_marker(pytest.mark.e2e)

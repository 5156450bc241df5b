"""The layout's rules (docs/architecture.md), checked on the source: what each package may import."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers/mlvault/python/mlvault"
TOOLS = ROOT / "tools/mlvault_tools"
LOCALCLOUD = ROOT / "localcloud"
HANDLERS = ROOT / "lambdas"
INFRA = ROOT / "infra"
# what infra may take from the library: names and pure modules (no boto3 at import, nothing that runs)
INFRA_MAY_IMPORT = {
    "mlvault.wiring",
    "mlvault.errors",
    "mlvault.contracts.schema",
    "mlvault.trust.producers",
    "mlvault.training.params",
    "mlvault.training.gates",
    "mlvault.training.specs",  # the models document the pipeline parses: validated the same way at synth
    "mlvault.training.job_entry.source_asset",  # builds a sagemaker model's sourcedir.tar.gz (standard library)
}


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are not used in this project)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module or "")
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("path", sources(LIBRARY) + sources(HANDLERS), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_shipped_imports_tooling_or_the_local_cloud(path):
    assert not {m for m in imports(path) if top(m) in ("mlvault_tools", "localcloud", "infra", "tests")}


def test_the_local_cloud_imports_nothing_of_mlvault():
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imports(p) if top(m) in ("mlvault", "mlvault_tools", "infra"))
        for p in sources(LOCALCLOUD)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_infra_takes_only_names_and_pure_modules_from_the_library():
    used = {m for p in [*sources(INFRA), ROOT / "app.py"] for m in imports(p) if top(m) == "mlvault"}
    modules = {m for m in used if any(m == allowed or m.startswith(allowed + ".") for allowed in INFRA_MAY_IMPORT)}
    assert used - modules == set()


# The signer (the custom resource provider that signs every other function's code) runs unsigned, without layers:
# standard library and boto3 only, no mlvault package. It is the one handler that makes its own clients.
SIGNER = HANDLERS / "signer"


def test_handlers_are_thin_adapters():
    """No boto3 client and no environment read in a handler: the library's composition root does both."""
    for path in sources(HANDLERS):
        if path.is_relative_to(SIGNER):
            continue
        text = path.read_text()
        assert "boto3" not in text, path
        assert "os.environ" not in text, path
        assert "getenv" not in text, path


def test_the_signer_takes_nothing_but_the_standard_library_and_boto3():
    """It runs without layers, so nothing else could be imported: not mlvault, not a third-party package."""
    import sys

    used = {top(m) for p in sources(SIGNER) for m in imports(p)}
    assert used - set(sys.stdlib_module_names) - {"__future__"} == {"boto3"}
    assert [p.name for p in sources(SIGNER)] == ["handler.py"]


def test_no_two_modules_share_a_name():
    names = Counter(
        p.name
        for folder in (LIBRARY, TOOLS, LOCALCLOUD, INFRA)
        for p in sources(folder)
        if p.name not in ("__init__.py", "__main__.py")
    )
    names.update([ROOT.joinpath("app.py").name])
    assert [name for name, count in names.items() if count > 1] == []

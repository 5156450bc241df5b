"""The README runs as written: every `mlvault` line of its shell blocks is a valid command line, and the ones that
need no cloud run, in the README's order, in a copy of the app's reviewed files, with the files the README names as
the reader's own (data.csv, sample.csv, orders.odcs.yaml)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from mlvault_tools.cli import build_parser, main
from mlvault_tools.samples import iris_csv

ROOT = Path(__file__).resolve().parents[2]
NO_CLOUD = {("keygen",), ("verify",), ("contract", "check"), ("contract", "import"), ("contract", "export")}
NO_CLOUD |= {("contract", "init"), ("sign",)}


def readme_commands() -> list[list[str]]:
    """Each `mlvault ...` line of the README's bash blocks, as the shell splits it (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "mlvault":
                lines.append(words[1:])
    return lines


def words_of(argv: list[str]) -> tuple[str, ...]:
    return tuple(argv[:2]) if argv[0] in ("contract", "models", "local", "producers", "bench") else (argv[0],)


def test_every_mlvault_line_of_the_readme_is_a_valid_command_line(checkout):
    for name in ("acme.pem", "envelope.txt", "rows.jsonl"):  # what earlier lines or the reader make
        (checkout / name).write_text("")
    commands = readme_commands()
    assert len(commands) >= 25
    for argv in commands:
        argv = argv[: argv.index(">")] if ">" in argv else argv
        try:
            build_parser().parse_args(argv)
        except SystemExit as refused:  # a usage error: the README line does not run as written
            pytest.fail(f"README: mlvault {shlex.join(argv)} -> exit {refused.code}")


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A copy of the app's reviewed files, and the reader's own files the README names."""
    for name in ("contracts", "trust"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "cdk.json", tmp_path / "cdk.json")
    (tmp_path / "data.csv").write_bytes(iris_csv(40, 5))
    (tmp_path / "sample.csv").write_text("station,reading\nnorth,1.5\nsouth,2.25\n")
    shutil.copy(ROOT / "tests/fixtures/odcs/examples/orders-v3.1.0.odcs.yaml", tmp_path / "orders.odcs.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_lines_that_need_no_cloud_run_as_written(checkout, capsys):
    ran = []
    for argv in readme_commands():
        if words_of(argv) not in NO_CLOUD or "--kms-key" in argv:
            continue
        redirect = None
        if ">" in argv:
            argv, redirect = argv[: argv.index(">")], argv[argv.index(">") + 1]
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"README: mlvault {shlex.join(argv)} -> exit {code}: {out}{err}"
        assert "Traceback" not in err
        if redirect:
            (checkout / redirect).write_text(out)
        if argv[0] == "keygen":  # "add the entry to trust/<stage>.json under the producer, by reviewed change"
            registry = json.loads((checkout / "trust/dev.json").read_text())
            registry["producers"]["acme"]["keys"].append(json.loads(out))
            (checkout / "trust/dev.json").write_text(json.dumps(registry))
        ran.append(words_of(argv))
    assert set(ran) == NO_CLOUD  # each of them is in the README, and ran

"""The CLI fails as a security tool should: every verb, given a stage it cannot reach or input it cannot use, says
so in one line naming what to do or what it expected, with a documented exit code, and does nothing. No verb
prints a traceback for any of these inputs (main() would raise it)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from mlvault_tools.cli import build_parser, main
from mlvault_tools.cli.base import ERROR, USAGE
from mlvault_tools.testkeys import private_key

ROOT = Path(__file__).resolve().parents[2]


def leaf_verbs(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command the parser has, by its words (`models list`, `push`, ...)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(leaf_verbs(sub, (*prefix, name)))
            return found
    return {prefix: parser}


def takes_the_cloud(parser: argparse.ArgumentParser) -> bool:
    return any(action.dest == "endpoint_url" for action in parser._actions)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    from mlvault.signing.keys import private_pem

    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    pem = tmp_path / "acme.pem"
    pem.write_bytes(private_pem(private_key("acme-p256")))
    rows = tmp_path / "rows.json"
    rows.write_text('[{"petal_length": 1.0}]')
    return {"data": str(data), "pem": str(pem), "rows": str(rows), "out": str(tmp_path / "check")}


def cloud_argv(i: dict[str, str]) -> dict[tuple[str, ...], list[str]]:
    """A well-formed command line of every verb that talks to the stage."""
    signed = ["--producer", "acme", "--dataset", "iris", "--key-id", "acme-p256"]
    return {
        ("status",): ["status", "producers/acme/iris/a.csv"],
        ("review",): ["review", "approve", "producers/acme/iris/a.csv", "--reason", "checked"],
        ("report",): ["report", "producers/acme/iris/a.csv"],
        ("push",): ["push", i["data"], *signed, "--key", i["pem"], "--wait", "5"],
        ("sign",): ["sign", i["data"], *signed, "--kms-key", "arn:aws:kms:eu-west-1:123456789012:key/k"],
        ("train",): ["train", "--model", "iris", "--wait", "5"],
        ("runs",): ["runs"],
        ("models", "list"): ["models", "list"],
        ("models", "show"): ["models", "show", "iris/1"],
        ("models", "approve"): ["models", "approve", "iris/1", "--reason", "reviewed"],
        ("models", "reject"): ["models", "reject", "iris/1", "--reason", "reviewed"],
        ("lineage",): ["lineage", "--producer", "acme"],
        ("verify-model",): ["verify-model", "iris/1", "--out", i["out"]],
        ("predict",): ["predict", "--model", "iris", i["rows"]],
        ("producers", "revoke"): ["producers", "revoke", "acme-p256", "--reason", "laptop stolen"],
    }


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_every_verb_that_talks_to_the_stage_is_covered(inputs):
    cloud_verbs = {words for words, parser in leaf_verbs(build_parser()).items() if takes_the_cloud(parser)}
    assert cloud_verbs == set(cloud_argv(inputs))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stopped_local_cloud(monkeypatch, tmp_path) -> str:
    """The shell still exports `mlvault local env` of a local cloud (of another state directory) that is gone."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    for name, value in {
        "MLVAULT_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIDLOCALDEVELOPER00",
        "AWS_SECRET_ACCESS_KEY": "local",
        "MLVAULT_LOCAL_STATE_DIR": "/tmp/other-cloud",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)  # a checkout of the app: cdk.json names the stage's registry
    return endpoint


@pytest.mark.parametrize("words", list(cloud_argv(dict.fromkeys(("data", "pem", "rows", "out"), "x"))))
def test_a_stage_that_cannot_be_reached_is_one_line_naming_what_to_do(
    words, inputs, stopped_local_cloud, capsys, tmp_path
):
    code, out, err = run(capsys, cloud_argv(inputs)[words])
    assert code == ERROR, err
    (line,) = err.splitlines()
    assert line.startswith(
        f"mlvault: stage dev: cannot reach {stopped_local_cloud} (MLVAULT_ENDPOINT_URL): is the local cloud running? "
    ), line
    assert '`mlvault local up --state-dir /tmp/other-cloud`, then `eval "$(mlvault local env --state-dir' in line
    assert "unset MLVAULT_ENDPOINT_URL and AWS_ENDPOINT_URL" in line
    assert out == ""
    assert not Path(inputs["out"]).exists()  # verify-model made no folder


@pytest.fixture
def no_aws_configuration(monkeypatch, tmp_path):
    for name in (
        "MLVAULT_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "MLVAULT_LOCAL_STATE_DIR",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("words", [("status",), ("runs",), ("producers", "revoke"), ("push",)])
def test_no_region_and_no_credentials_are_one_line_each(words, inputs, no_aws_configuration, monkeypatch, capsys):
    argv = cloud_argv(inputs)[words]
    code, _, err = run(capsys, argv)
    assert code == ERROR
    assert err == (
        "mlvault: stage dev: no AWS region: give --region or set AWS_DEFAULT_REGION (for the local cloud: "
        '`mlvault local up`, then `eval "$(mlvault local env)"`)\n'
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    code, _, err = run(capsys, argv)
    assert code == ERROR
    assert err == (
        "mlvault: stage dev: no AWS credentials: configure them as for the AWS CLI (for the local cloud: "
        '`mlvault local up`, then `eval "$(mlvault local env)"`)\n'
    )


def bad_input_argv(i: dict[str, str], tmp: Path) -> list[tuple[list[str], int, str]]:
    """(command line, exit code, what its one line must say) for input the verb cannot use."""
    signed = ["--producer", "acme", "--dataset", "iris", "--key-id", "acme-p256", "--key", i["pem"]]
    (tmp / "bad.json").write_text("{not json")
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "not-a-key.pem").write_text("hello")
    (tmp / "taken.pem").write_text("a key already")
    return [
        (["push", str(tmp / "missing.csv"), *signed], USAGE, "no such file 'MISSING' (expected the data file to sign)"),
        (["push", str(tmp), *signed], USAGE, "is a directory (expected the data file to sign)"),
        (["sign", i["data"], *signed[:-2], "--key", str(tmp / "nope.pem")], USAGE, "(expected a PEM private key)"),
        (["sign", i["data"], *signed[:-1], str(tmp / "not-a-key.pem")], ERROR, "not an unencrypted PEM private key"),
        (["push", i["data"], *signed, "--wait", "-1"], USAGE, "argument --wait: must be at least 0, got -1"),
        (["push", i["data"], *signed, "--wait", "soon"], USAGE, "argument --wait: 'soon' is not a number"),
        (["push", i["data"], *signed[:2], "--dataset", "Iris!", *signed[4:]], USAGE, "'Iris!' is not a dataset id"),
        (["train", "--model", "iris", "--wait", "-5"], USAGE, "argument --wait: must be at least 0, got -5"),
        (["keygen", "--key-id", "acme-2027", "--out", str(tmp / "k.pem"), "--valid-days", "0"], USAGE, "at least 1"),
        (["keygen", "--key-id", "acme-2027", "--out", str(tmp / "k.pem"), "--valid-days", "-3"], USAGE, "at least 1"),
        (["keygen", "--key-id", "acme-2027", "--out", str(tmp / "taken.pem")], ERROR, "refusing to overwrite"),
        (["keygen", "--key-id", "acme-2027", "--out", str(tmp / "no" / "k.pem")], USAGE, "no directory"),
        (["verify", i["data"], "--object-key", "k", "--envelope", "e", "--at", "yesterday"], USAGE, "ISO 8601"),
        (["verify", i["data"], "--object-key", "k", "--envelope", "@" + str(tmp / "env.txt")], USAGE, "no such file"),
        (["producers", "revoke", "k", "--reason", "x", "--effective-at", "2026-11-25 10:00"], USAGE, "with a zone"),
        (["producers", "revoke", "k", "--reason", "   "], USAGE, "give a reason"),
        (["review", "approve", "k", "--reason", ""], USAGE, "give a reason"),
        (["contract", "check", str(tmp / "missing.csv"), "--dataset", "iris"], USAGE, "no such file"),
        (["contract", "check", i["data"], "--dataset", "iris", "--baseline", str(tmp / "bad.json")], USAGE, "not JSON"),
        (["contract", "check", i["data"], "--dataset", "iris", "--baseline", str(tmp / "list.json")], ERROR, "profile"),
        (["contract", "check", i["data"], "--dataset", "iris", "--contracts", i["data"]], USAGE, "is a file"),
        (["contract", "import", str(tmp / "missing.yaml"), "--dataset", "orders"], USAGE, "an ODCS document"),
        (["contract", "export", "iris", "--out", str(tmp / "no" / "x.yaml")], USAGE, "no directory"),
        (["contract", "init", str(tmp), "--dataset", "x"], USAGE, "is a directory"),
        (["predict", "--model", "iris", str(tmp / "rows.jsonl")], USAGE, "no such file"),
        (["local", "up", "--port", "70000"], USAGE, "argument --port: must be at most 65535, got 70000"),
        (["local", "up", "--port", "http"], USAGE, "argument --port: 'http' is not an integer"),
        (
            ["local", "up", "--cdk-out", str(tmp / "cdk.out")],
            USAGE,
            "(expected the cloud assembly `make synth` writes)",
        ),
        (["local", "up", "--schedule-scale", "0"], USAGE, "must be more than 0"),
        (["local", "status", "--state-dir", i["data"]], USAGE, "is a file (expected a directory)"),
        (["local", "env", "--state-dir", str(tmp / "none")], ERROR, "no local cloud is running"),
        (["demo", "--port", "-1"], USAGE, "must be at least 0"),
        (["bench", "model", "--rows", "0"], USAGE, "must be at least 1"),
        (["bench", "ingest", "--cdk-out", str(tmp / "none")], USAGE, "does not exist"),
        (["models", "list", "--no-such-option"], USAGE, "unrecognized arguments: --no-such-option"),
        (["models", "show"], USAGE, "the following arguments are required: model_id"),
        (["models", "approve", "iris/1"], USAGE, "the following arguments are required: --reason"),
        (["models", "reject", "iris/1", "--reason", " "], USAGE, "give a reason"),
        (["status"], USAGE, "the following arguments are required: key"),
        (["report", "k", "--json", "--version"], USAGE, "argument --version: expected one argument"),
        (["runs", "--dataset"], USAGE, "argument --dataset: expected one argument"),
        (["lineage"], USAGE, "one of the arguments --model --producer --key-id --file is required"),
        (["verify-model", "iris/1", "--out", i["data"]], USAGE, "is a file (expected a directory)"),
        (["local", "down", "--state-dir", i["data"]], USAGE, "is a file (expected a directory)"),
        (["bench", "unique", "--rows", "0"], USAGE, "must be at least 1"),
        (["bench", "contracts", "--rows", "-1"], USAGE, "must be at least 1"),
        (["bench", "screen", "--dataset", "orders"], USAGE, "invalid choice: 'orders'"),
        (["bench", "serve", "--calls", "0"], USAGE, "must be at least 1"),
    ]


def test_every_verb_is_given_input_it_cannot_use(inputs, tmp_path):
    verbs = set(leaf_verbs(build_parser()))
    tried = {v for argv, _, _ in bad_input_argv(inputs, tmp_path) for v in verbs if tuple(argv[: len(v)]) == v}
    assert verbs - tried == set()


def test_input_a_verb_cannot_use_is_one_line_and_nothing_is_written(inputs, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, expected_code, says in bad_input_argv(inputs, tmp_path):
        try:
            code, out, err = run(capsys, argv)
        except SystemExit as exit_:  # argparse's usage errors
            code, (out, err) = exit_.code, capsys.readouterr()
        assert code == expected_code, (argv, err)
        assert out == "", argv
        assert "Traceback" not in err
        (line,) = err.splitlines() or [""]
        assert line.startswith("mlvault"), (argv, err)
        assert says.replace("MISSING", str(tmp_path / "missing.csv")) in line, (argv, line)
        if code == USAGE:
            assert line.endswith("--help`)"), line  # the usage is one --help away, not printed
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == sorted([*before, "bad.json", "list.json", "not-a-key.pem", "taken.pem"])  # no key, no profile


def test_the_exit_codes_are_documented_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for code in ("0 done", "1 nothing was done", "2 the command line is wrong", "3 a verdict, and it is no", "4 HELD"):
        assert code in out


def test_the_upload_progress_shows_the_rate_and_the_time_left():
    import io

    from mlvault_tools.producer import progress_bar

    ticks = iter([0.0, 2.0, 4.0])
    stream = io.StringIO()
    show = progress_bar(stream, clock=lambda: next(ticks))
    show(16 * 2**20, 64 * 2**20)  # 16 MiB in 2 s: 8 MiB/s, 48 MiB to go
    show(64 * 2**20, 64 * 2**20)
    first, last = stream.getvalue().split("\r")[1:]
    assert first.endswith("    16.0 / 64.0 MiB     8.0 MiB/s     6 s left")
    assert last.endswith("    64.0 / 64.0 MiB    16.0 MiB/s     0 s left\n")


def test_progress_is_drawn_on_a_terminal_only():
    import io

    from mlvault_tools.cli.base import on_terminal

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert (on_terminal(io.StringIO()), on_terminal(Terminal())) == (False, True)

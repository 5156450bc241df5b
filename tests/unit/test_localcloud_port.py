"""`mlvault local up --port N` (localcloud.control.up) serves port N on 127.0.0.1 or refuses, in one line: a number
that is no TCP port, a port in use (checked before the server process starts, so nothing is started or written), and
the server itself, which listens on the port it was asked for or exits (it never waits on, or falls back from, a
port it cannot have). No cloud is provisioned here: each refusal comes before the cloud assembly is read."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import control, server
from tests.conftest import ROOT

IN_USE = "port {} on 127.0.0.1 is in use: give another --port or omit it for a free one"


@pytest.fixture
def busy() -> Iterator[int]:
    """A port some other program listens on, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.fixture
def app(tmp_path) -> Path:
    """A synthesized app as far as `up` looks before it starts the server: its manifest."""
    (tmp_path / "cdk.out").mkdir()
    (tmp_path / "cdk.out" / "manifest.json").write_text("{}")
    return tmp_path / "cdk.out"


@pytest.fixture
def no_server(monkeypatch) -> None:
    """Starting the server process fails the test: the refusals come before it."""

    def popen(*args, **kwargs):
        raise AssertionError(f"the server process was started: {args}")

    monkeypatch.setattr(control.subprocess, "Popen", popen)


@pytest.mark.parametrize("port", [-1, 65536, 10**6, True, "8080", 80.0])
def test_up_refuses_a_number_that_is_no_tcp_port(app, tmp_path, no_server, port):
    with pytest.raises(control.LocalCloudError) as err:
        control.up(cdk_out=app, state_dir=tmp_path / "state", port=port)
    assert str(err.value) == f"port {port!r} is not a TCP port: give one from 1 to 65535, or omit --port for a free one"
    assert not (tmp_path / "state").exists()  # nothing written


def test_up_refuses_a_port_in_use_before_it_starts_the_server(app, tmp_path, no_server, busy):
    with pytest.raises(control.LocalCloudError) as err:
        control.up(cdk_out=app, state_dir=tmp_path / "state", port=busy)
    assert str(err.value) == IN_USE.format(busy)
    assert not (tmp_path / "state").exists()  # nothing written, no server log, no state file


def test_the_port_check_takes_a_free_port_and_zero(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    for port in (free, 0):
        server.check_port(port)  # no error: `up` goes on to start the server
    with server.listen(free) as listening:  # and the server can take the port right after the check
        assert listening.getsockname() == ("127.0.0.1", free)


def test_the_server_does_not_start_on_a_port_it_cannot_have(tmp_path, busy):
    """The server binds its port first, before it reads the cloud assembly: it refuses, and never waits."""
    cloud = server.LocalCloud(cdk_out=tmp_path / "no-cdk-out", state_dir=tmp_path / "state", port=busy)
    with pytest.raises(server.PortError) as err:
        cloud.start()
    assert str(err.value) == IN_USE.format(busy)
    command = ["--cdk-out", str(tmp_path), "--state-dir", str(tmp_path / "s"), "--port", str(busy)]
    result = subprocess.run(
        [sys.executable, "-m", "localcloud.server", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        server.EXIT_PORT_UNAVAILABLE,
        "",
        f"local cloud: {IN_USE.format(busy)}\n",
    )


def test_up_reports_a_port_the_server_could_not_have_in_one_line(app, tmp_path, monkeypatch, busy):
    """The port taken between the check and the server's bind: the server exits and `up` says why in one line."""
    monkeypatch.setattr(control, "check_port", lambda port: None)  # the check passed; then another program took it
    with pytest.raises(control.LocalCloudError) as err:
        control.up(cdk_out=app, state_dir=tmp_path / "state", port=busy, timeout=60)
    assert str(err.value) == f"the local cloud failed to start: {IN_USE.format(busy)}"
    assert not (tmp_path / "state" / server.STATE_FILE).exists()


def test_the_server_serves_the_port_it_listens_on():
    import boto3

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = server.MotoServer(server.listen(port))
    moto.start()
    try:
        assert moto.get_host_and_port() == ("127.0.0.1", port)
        sts = boto3.client(
            "sts",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert sts.get_caller_identity()["Account"].isdigit()
    finally:
        moto.stop()
    server.check_port(port)  # and gives it back when stopped

"""mlvault_job.py, the verifier inside the training job, in a temporary /opt/ml layout: it runs the team's entry
point only when every input is the input mlvault prepared, and otherwise fails closed with INPUT_DIGEST_MISMATCH in
/opt/ml/output/failure. It imports nothing but the standard library (it runs in any framework image)."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlvault.training.job_entry import mlvault_job, source_asset

JOB = Path(mlvault_job.__file__)
ENTRY = """\
import json, os, sys
from pathlib import Path
Path(os.environ["SM_MODEL_DIR"], "ran.json").write_text(json.dumps({"argv": sys.argv[1:], "name": __name__}))
"""


def _entry(name: str, data: bytes) -> dict:
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": 1}


def opt_ml(tmp_path: Path, *, validation: bool = True) -> tuple[Path, Path, dict]:
    """A job's /opt/ml: channels, code, hyperparameters, and the extracted source (its code directory)."""
    root = tmp_path / "opt" / "ml"
    data = root / "input" / "data"
    team = tmp_path / "models" / "demo"
    team.mkdir(parents=True)
    (team / "train.py").write_text(ENTRY)
    (data / "code").mkdir(parents=True)
    code_sha = source_asset.build_source_asset(team, data / "code" / "sourcedir.tar.gz")
    channels = {"train": {"part-00000.parquet": b"train rows 0", "part-00001.parquet": b"train rows 1"}}
    if validation:
        channels["validation"] = {"part-00000.parquet": b"validation rows"}
    listed = {}
    for name, files in channels.items():
        (data / name).mkdir()
        for file, body in files.items():
            (data / name / file).write_bytes(body)
        listed[name] = [_entry(f, b) for f, b in files.items()]
    inputs = {
        "format": "mlvault.job-inputs/v1",
        "run_id": "r1",
        "model": "demo",
        "channels": listed,
        "code": {"file": "sourcedir.tar.gz", "sha256": code_sha},
    }
    body = json.dumps(inputs).encode()
    (data / "mlvault").mkdir()
    (data / "mlvault" / "inputs.json").write_bytes(body)
    hps = {
        "n_estimators": "5",
        "sagemaker_program": "mlvault_job.py",
        "mlvault_entry_point": "train.py",
        "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz",
        "mlvault_inputs_sha256": hashlib.sha256(body).hexdigest(),
        "learning_rate": '"0.1"',
    }
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    (root / "model").mkdir()
    code = tmp_path / "code"
    code.mkdir()
    with tarfile.open(data / "code" / "sourcedir.tar.gz") as tar:
        tar.extractall(code, filter="data")
    return root, code, inputs


def run(root: Path, code: Path) -> subprocess.CompletedProcess:
    env = {"MLVAULT_OPT_ML": str(root), "SM_MODEL_DIR": str(root / "model"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-I", str(code / "mlvault_job.py")], cwd=code, env=env, capture_output=True, text=True
    )


def test_verified_inputs_run_the_entry_point_as_script_mode_would(tmp_path):
    root, code, _ = opt_ml(tmp_path)
    done = run(root, code)
    assert done.returncode == 0, done.stderr
    ran = json.loads((root / "model" / "ran.json").read_text())
    assert ran == {"argv": ["--learning_rate", "0.1", "--n_estimators", "5"], "name": "__main__"}
    assert not (root / "output" / "failure").exists()


def refused(root: Path, code: Path) -> str:
    done = run(root, code)
    assert done.returncode == 1
    assert not (root / "model" / "ran.json").exists()  # the team's code never ran
    failure = (root / "output" / "failure").read_text()
    assert done.stderr.strip().splitlines()[-1] == failure
    assert failure.startswith("INPUT_DIGEST_MISMATCH: ")
    return failure


def test_a_channel_file_whose_digest_differs_fails_closed(tmp_path):
    root, code, inputs = opt_ml(tmp_path)
    (root / "input/data/train/part-00001.parquet").write_bytes(b"train rows X")
    expected = inputs["channels"]["train"][1]["sha256"]
    got = hashlib.sha256(b"train rows X").hexdigest()
    assert refused(root, code) == (
        f"INPUT_DIGEST_MISMATCH: train/part-00001.parquet: expected sha256 {expected}, got {got}"
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: (r / "input/data/validation/part-00000.parquet").unlink(), "validation/part-00000.parquet: missing"),
        (lambda r: (r / "input/data/train/extra.parquet").write_bytes(b"x"), "train/extra.parquet: not in inputs.json"),
        (lambda r: (r / "input/data/heldout").mkdir(), "channel(s) ['heldout']: not in inputs.json"),
        (lambda r: (r / "input/data/mlvault/inputs.json").write_text("{}"), "inputs.json: expected sha256"),
        (lambda r: (r / "input/data/code/sourcedir.tar.gz").write_bytes(b"other"), "code/sourcedir.tar.gz: expected"),
        (
            lambda r: (
                (r / "input/data/train/part-00000.parquet").unlink()
                or (r / "input/data/train/part-00000.parquet").symlink_to(r / "input/data/train/part-00001.parquet")
            ),
            "part-00000.parquet: not a regular file",
        ),
    ],
    ids=["missing", "extra", "unknown-channel", "inputs-json", "code", "symlink"],
)
def test_any_other_input_than_the_prepared_one_fails_closed(tmp_path, change, says):
    root, code, _ = opt_ml(tmp_path)
    change(root)
    assert says in refused(root, code)


def test_a_job_mlvault_did_not_start_is_refused(tmp_path):
    root, code, _ = opt_ml(tmp_path)
    path = root / "input" / "config" / "hyperparameters.json"
    hps = json.loads(path.read_text())
    del hps["mlvault_inputs_sha256"]
    path.write_text(json.dumps(hps))
    assert "mlvault_inputs_sha256: missing" in refused(root, code)


def test_sm_hps_and_channel_variables_are_honoured(tmp_path, monkeypatch):
    root, code, _ = opt_ml(tmp_path, validation=False)
    moved = tmp_path / "elsewhere"
    (root / "input" / "data" / "train").rename(moved)
    hps = (root / "input" / "config" / "hyperparameters.json").read_text()
    (root / "input" / "config" / "hyperparameters.json").unlink()
    for name, value in {"SM_HPS": hps, "SM_CHANNEL_TRAIN": str(moved), "MLVAULT_OPT_ML": str(root)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SM_MODEL_DIR", str(root / "model"))
    monkeypatch.setattr(mlvault_job, "__file__", str(code / "mlvault_job.py"))
    monkeypatch.setattr(sys, "argv", ["mlvault_job.py"])
    monkeypatch.syspath_prepend(str(code))
    assert mlvault_job.main() == 0
    assert json.loads((root / "model" / "ran.json").read_text())["argv"][-2:] == ["--n_estimators", "5"]


def test_it_imports_nothing_but_the_standard_library(tmp_path):
    tree = ast.parse(JOB.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add((node.module or "").split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    # and it runs where nothing but the standard library exists: isolated mode, no site-packages
    root, code, _ = opt_ml(tmp_path)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import runpy; runpy.run_path({str(code / 'mlvault_job.py')!r})"],
        cwd=code,
        env={"MLVAULT_OPT_ML": str(root), "SM_MODEL_DIR": str(root / "model")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_source_asset_is_deterministic_and_carries_the_verifier(tmp_path):
    team = tmp_path / "team"
    (team / "lib").mkdir(parents=True)
    (team / "train.py").write_text("print('hi')\n")
    (team / "lib" / "util.py").write_text("X = 1\n")
    (team / "__pycache__").mkdir()
    (team / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (team / ".env").write_text("SECRET=1\n")
    first = source_asset.build_source_asset(team, tmp_path / "a.tar.gz")
    (team / "train.py").touch()  # another mtime: the same bytes
    assert source_asset.build_source_asset(team, tmp_path / "b.tar.gz") == first
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["lib/util.py", "mlvault_job.py", "train.py"]
    assert {(m.mode, m.mtime, m.uid) for m in members} == {(0o644, 0, 0)}
    (team / "mlvault_job.py").write_text("print('not the verifier')\n")
    with pytest.raises(ValueError, match="mlvault's job entry point"):
        source_asset.build_source_asset(team, tmp_path / "c.tar.gz")

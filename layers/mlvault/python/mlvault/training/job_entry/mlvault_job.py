"""mlvault's verifier inside a SageMaker training job: the job's `sagemaker_program`, run before the team's code.

Standard library only (it runs in any framework image, before the team's requirements matter). It re-hashes every
input of the job against the run's input manifest (`inputs.json`, written by mlvault's prepare step) and fails
closed; only then does it run the team's entry point, as script mode would have:

  1. `inputs.json` (the only file of the `mlvault` channel) hashes to the hyperparameter `mlvault_inputs_sha256`
     (the state machine passes it from the prepare step's output: the job cannot be given another manifest);
  2. every channel inputs.json lists holds exactly its files (none missing, none extra), each of the recorded size
     and SHA-256; a channel inputs.json does not list (other than `mlvault` and `code`) is refused: the held-out
     split mlvault keeps can never be slipped in as a channel;
  3. the `code` channel holds exactly `sourcedir.tar.gz`, of the SHA-256 inputs.json records;
  4. the entry point (`mlvault_entry_point`, a path inside the extracted source) runs with `runpy` as `__main__`,
     with the team's hyperparameters as `--name value` arguments (never the `sagemaker_` and `mlvault_` ones).

Any refusal writes `INPUT_DIGEST_MISMATCH: <what>: expected X, got Y` to `/opt/ml/output/failure` (SageMaker's
FailureReason) and as the last line of stderr, and exits 1 before the team's code reads anything.

Paths: SageMaker's layout under /opt/ml (MLVAULT_OPT_ML, else the parent of SM_MODEL_DIR, names another root, as
the local cloud does); SM_CHANNEL_<NAME>, SM_HPS and SM_OUTPUT_DIR are honoured when set.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import stat
import sys
from pathlib import Path

INPUTS_FORMAT = "mlvault.job-inputs/v1"
INPUTS_FILE = "inputs.json"
SOURCE_FILE = "sourcedir.tar.gz"
OWN_CHANNELS = ("mlvault", "code")
CODE = "INPUT_DIGEST_MISMATCH"
MAX_INPUTS_BYTES = 16 * 1024 * 1024
CHUNK = 1024 * 1024
_RESERVED = ("sagemaker_", "mlvault_")


class Refused(Exception):
    """An input is not the input mlvault prepared: the job stops before the team's code runs."""


def root() -> Path:
    if os.environ.get("MLVAULT_OPT_ML"):
        return Path(os.environ["MLVAULT_OPT_ML"])
    if os.environ.get("SM_MODEL_DIR"):
        return Path(os.environ["SM_MODEL_DIR"]).parent
    return Path("/opt/ml")


def _decode(value: object) -> str:
    """A hyperparameter's value as a string (the SDK JSON-encodes them: '"train.py"' is train.py)."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return json.dumps(value)


def hyperparameters(base: Path) -> dict[str, str]:
    text = os.environ.get("SM_HPS")
    if not text:
        text = (base / "input" / "config" / "hyperparameters.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise Refused(f"hyperparameters: expected an object, got {type(raw).__name__}")
    return {str(k): _decode(v) for k, v in raw.items()}


def channel_dir(base: Path, name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}") or base / "input" / "data" / name)


def sha256(path: Path) -> tuple[str, int]:
    """Hex SHA-256 and size of a regular file (never through a link)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise Refused(f"{path.name}: not a regular file")
        digest, size = hashlib.sha256(), 0
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def files(folder: Path) -> dict[str, Path]:
    """Relative POSIX name -> path of every file under `folder`; links and special files are refused."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                raise Refused(f"{(here / name).relative_to(folder).as_posix()}: a symbolic link in a channel")
        for name in filenames:
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink() or not path.is_file():
                raise Refused(f"{relative}: not a regular file")
            found[relative] = path
    return found


def _expect(what: str, expected: str, got: str) -> None:
    if expected != got:
        raise Refused(f"{what}: expected sha256 {expected}, got {got}")


def load_inputs(base: Path, expected_sha256: str) -> dict:
    folder = channel_dir(base, "mlvault")
    present = files(folder)
    if sorted(present) != [INPUTS_FILE]:
        raise Refused(f"mlvault channel: expected exactly {INPUTS_FILE}, got {sorted(present)}")
    path = present[INPUTS_FILE]
    if path.stat().st_size > MAX_INPUTS_BYTES:
        raise Refused(f"{INPUTS_FILE}: more than {MAX_INPUTS_BYTES} bytes")
    data = path.read_bytes()
    _expect(INPUTS_FILE, expected_sha256, hashlib.sha256(data).hexdigest())
    inputs = json.loads(data)
    if not isinstance(inputs, dict) or inputs.get("format") != INPUTS_FORMAT:
        raise Refused(f"{INPUTS_FILE}: expected format {INPUTS_FORMAT}")
    return inputs


def verify(base: Path, hps: dict[str, str]) -> dict:
    """Every check of the module docstring; returns inputs.json. Raises Refused."""
    expected = hps.get("mlvault_inputs_sha256", "")
    if len(expected) != 64:
        raise Refused("hyperparameter mlvault_inputs_sha256: missing (the job was not started by mlvault)")
    inputs = load_inputs(base, expected)
    channels = inputs.get("channels")
    if not isinstance(channels, dict) or "train" not in channels:
        raise Refused(f"{INPUTS_FILE}: no train channel")
    data_dir = base / "input" / "data"
    present_channels = {p.name for p in data_dir.iterdir()} if data_dir.is_dir() else set()
    unknown = sorted(present_channels - set(channels) - set(OWN_CHANNELS))
    if unknown:
        raise Refused(f"channel(s) {unknown}: not in {INPUTS_FILE}")
    for name, listed in sorted(channels.items()):
        folder = channel_dir(base, name)
        present = files(folder)
        wanted = {entry["file"]: entry for entry in listed}
        for missing in sorted(set(wanted) - set(present)):
            raise Refused(f"{name}/{missing}: missing (expected sha256 {wanted[missing]['sha256']})")
        for extra in sorted(set(present) - set(wanted)):
            raise Refused(f"{name}/{extra}: not in {INPUTS_FILE}")
        for file, entry in sorted(wanted.items()):
            got, size = sha256(present[file])
            _expect(f"{name}/{file}", entry["sha256"], got)
            if size != entry["bytes"]:
                raise Refused(f"{name}/{file}: expected {entry['bytes']} bytes, got {size}")
    code = inputs.get("code") or {}
    present = files(channel_dir(base, "code"))
    if sorted(present) != [SOURCE_FILE]:
        raise Refused(f"code channel: expected exactly {SOURCE_FILE}, got {sorted(present)}")
    _expect(f"code/{SOURCE_FILE}", str(code.get("sha256")), sha256(present[SOURCE_FILE])[0])
    return inputs


def fail(base: Path, message: str) -> int:
    line = f"{CODE}: {message}"
    output = Path(os.environ.get("SM_OUTPUT_DIR") or base / "output")
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(line[:1024], encoding="utf-8")
    finally:
        print(line, file=sys.stderr, flush=True)
    return 1


def arguments(hps: dict[str, str]) -> list[str]:
    argv: list[str] = []
    for key in sorted(hps):
        if not key.startswith(_RESERVED):
            argv += [f"--{key}", hps[key]]
    return argv


def run_entry_point(entry: str, hps: dict[str, str]) -> None:
    code_dir = Path(__file__).resolve().parent
    path = (code_dir / entry).resolve()
    if not path.is_relative_to(code_dir) or not path.is_file():
        raise Refused(f"mlvault_entry_point {entry!r}: not a file of the source")
    sys.argv = [str(path), *arguments(hps)]
    sys.path.insert(0, str(path.parent))
    runpy.run_path(str(path), run_name="__main__")


def main() -> int:
    base = root()
    try:
        hps = hyperparameters(base)
        verify(base, hps)
        entry = hps.get("mlvault_entry_point", "")
        if not entry:
            raise Refused("hyperparameter mlvault_entry_point: missing")
    except Refused as err:
        return fail(base, str(err))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return fail(base, f"the job's inputs cannot be checked: {type(err).__name__}: {err}")
    try:
        run_entry_point(entry, hps)
    except Refused as err:
        return fail(base, str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The source asset of a sagemaker model: `sourcedir.tar.gz`, deterministic, content-hashed.

It holds the team's `models/<name>/` (its entry point, `requirements.txt`, any modules) and, at its top level,
mlvault's `mlvault_job.py` (this package), the job's `sagemaker_program`. Deterministic: members sorted by path,
regular files only (symbolic links are refused), mode 0644, owner 0, mtime 0, the gzip header's mtime 0 and no
file name in it; `__pycache__`, `*.pyc` and dot-files are left out. The same files give the same bytes, so its
SHA-256 is the model's code digest (in the run record, the registry record, the provenance statement and the
lineage). A team file named `mlvault_job.py` is refused: it would replace mlvault's verifier.

infra builds the asset at synth with `build_source_asset`, deploys it, and passes its bucket, key and digest to
the pipeline function (`MLVAULT_MODELS`, `code`); the prepare step re-hashes it before a job may read it.
Standard library only: infra imports it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import IO

JOB_ENTRY = Path(__file__).with_name("mlvault_job.py")
SOURCE_FILE = "sourcedir.tar.gz"


def source_files(model_dir: Path) -> dict[str, Path]:
    """Archive name -> path: the model directory's files and mlvault_job.py."""
    files: dict[str, Path] = {}
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            raise ValueError(f"{path}: a symbolic link cannot go into a source asset")
        if path.is_file():
            files[relative.as_posix()] = path
    if JOB_ENTRY.name in files:
        raise ValueError(f"{model_dir}/{JOB_ENTRY.name}: that name is mlvault's job entry point; rename the file")
    files[JOB_ENTRY.name] = JOB_ENTRY
    return dict(sorted(files.items()))


def write_source_asset(model_dir: Path, out: IO[bytes]) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in source_files(model_dir).items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = path.stat().st_size, 0o644, 0, 0, 0
            info.uname = info.gname = ""
            with path.open("rb") as source:
                tar.addfile(info, source)


def build_source_asset(model_dir: Path, target: Path) -> str:
    """Write `target` (sourcedir.tar.gz) from `model_dir`; returns its hex SHA-256."""
    buffer = io.BytesIO()
    write_source_asset(model_dir, buffer)
    data = buffer.getvalue()
    target.write_bytes(data)
    return hashlib.sha256(data).hexdigest()

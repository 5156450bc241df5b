"""The collect step (engine `sagemaker`): the training job's output becomes a model package, or the run fails with
the reason (docs/bring-your-own-model.md, section 2.6).

1. `model.tar.gz`, at the output key the prepare step named (`jobs/<model>/<job>/output/model.tar.gz`; a job
   description naming another key is refused), is downloaded bounded (MAX_OUTPUT_BYTES) through SHA-256;
2. it is read as a stream and only `model.onnx` and `descriptor.json` are extracted, fail closed
   (TRAINING_OUTPUT_INVALID): regular files and directories only (no links, devices or FIFOs), no absolute names
   and no `..`, each name once, at most MAX_MEMBERS members and MAX_OUTPUT_BYTES extracted; other files the script
   wrote are not part of the package (their names are recorded);
3. `model.onnx` must exist (NO_ONNX_MODEL), `descriptor.json` too (NO_DESCRIPTOR); the descriptor parses
   (DESCRIPTOR_INVALID) and agrees with the contract and the model's name (DESCRIPTOR_MISMATCH);
4. onnxruntime loads the graph and its inputs and outputs are the descriptor's (ONNX_INVALID); a model that
   fails on the train channel's rows or answers outside its classes is ONNX_INVALID too (step 5 runs it);
5. drift.json is computed by mlvault from the train channel (re-verified part by part) and the model's own
   predictions on it (mlvault.training.drift_stream);
6. the package is packed and stored (mlvault.training.package_io): the artifact of the run.
"""

from __future__ import annotations

import gzip
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mlvault.canonical import canonical_json
from mlvault.contracts.schema import Contract
from mlvault.errors import TrainingError, TrainingReason
from mlvault.model_package import (
    DESCRIPTOR_FILE,
    DRIFT_FILE,
    MAX_DESCRIPTOR_BYTES,
    MAX_PACKAGE_BYTES,
    MODEL_FILE,
    ModelDescriptor,
    check_against_contract,
    parse_descriptor,
)
from mlvault.training.channels import iter_parts
from mlvault.training.objects import download
from mlvault.training.package_io import store_package

MAX_OUTPUT_BYTES = MAX_PACKAGE_BYTES  # the compressed archive, and what it may extract to
MAX_MEMBERS = 10_000
OUTPUT_FILE = "model.tar.gz"
WANTED = (MODEL_FILE, DESCRIPTOR_FILE)


def _invalid(detail: str) -> TrainingError:
    return TrainingError(TrainingReason.TRAINING_OUTPUT_INVALID, detail)


def output_key(job: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of the job's model.tar.gz, from the prepare step's state."""
    uri = job["model_artifacts"]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def check_reported(job: dict[str, Any], reported: dict[str, Any] | None) -> None:
    """The job description's S3ModelArtifacts (when the state machine passed it) is the key prepare named."""
    if not reported:
        return
    artifacts = reported.get("ModelArtifacts", {}).get("S3ModelArtifacts") or reported.get("model_artifacts")
    name = reported.get("TrainingJobName") or reported.get("name")
    if artifacts is not None and artifacts != job["model_artifacts"]:
        raise _invalid(f"the job reports its model at {artifacts}, expected {job['model_artifacts']}")
    if name is not None and name != job["name"]:
        raise _invalid(f"the job reports the name {name!r}, expected {job['name']!r}")


def _member_name(member: tarfile.TarInfo) -> str:
    """A member's name, normalized ("./model.onnx" is "model.onnx"); refused if absolute or with ".."."""
    raw = member.name
    if raw.startswith("/") or "\\" in raw or "\x00" in raw:
        raise _invalid(f"model.tar.gz: member {raw!r} has an absolute or unsafe name")
    parts = [p for p in PurePosixPath(raw).parts if p != "."]
    if any(p == ".." for p in parts):
        raise _invalid(f"model.tar.gz: member {raw!r} leaves the archive (..)")
    return "/".join(parts)


def extract_output(stream: IO[bytes], folder: Path) -> list[str]:
    """Extract model.onnx and descriptor.json from model.tar.gz into `folder` (module docstring, step 2); the names
    of the other files it holds."""
    others: list[str] = []
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise _invalid(f"model.tar.gz: more than {MAX_MEMBERS} members")
                name = _member_name(member)
                if member.isdir():
                    continue
                if not member.isreg():
                    raise _invalid(f"model.tar.gz: {member.name!r} is not a regular file (a link or special file)")
                if name in seen:
                    raise _invalid(f"model.tar.gz: {name!r} appears twice")
                seen.add(name)
                total += member.size
                if total > MAX_OUTPUT_BYTES:
                    raise _invalid(f"model.tar.gz: more than {MAX_OUTPUT_BYTES} bytes extracted")
                if name not in WANTED:
                    others.append(name)
                    continue
                if name == DESCRIPTOR_FILE and member.size > MAX_DESCRIPTOR_BYTES:
                    raise TrainingError(
                        TrainingReason.DESCRIPTOR_INVALID,
                        f"{DESCRIPTOR_FILE}: {member.size} bytes, at most {MAX_DESCRIPTOR_BYTES}",
                    )
                source = tar.extractfile(member)
                with (folder / name).open("xb") as out:
                    while chunk := source.read(1024 * 1024):
                        out.write(chunk)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise _invalid(f"model.tar.gz is not a gzip tar: {type(err).__name__}: {err}") from None
    return sorted(others)


@dataclass(frozen=True)
class Collected:
    artifact: dict[str, Any]  # the stored package's pins
    descriptor: ModelDescriptor
    output: dict[str, Any]  # model.tar.gz: bucket, key, version_id, sha256, bytes, other files


def collect_output(
    s3: Any, *, bucket: str, model: str, contract: Contract, job: dict[str, Any], reported: dict[str, Any] | None
) -> Collected:
    """Steps 1-6 of the module docstring; raises TrainingError with the step's reason code."""
    from mlvault.training.drift_stream import stream_reference
    from mlvault.training.onnx_scoring import OnnxScorer

    check_reported(job, reported)
    output_bucket, key = output_key(job)
    with tempfile.TemporaryDirectory(prefix="mlvault-collect-") as scratch:
        archive = Path(scratch) / OUTPUT_FILE
        try:
            version, sha256, size = download(
                s3, output_bucket, key, archive, version_id=None, limit=MAX_OUTPUT_BYTES, refuse=_invalid
            )
        except s3.exceptions.NoSuchKey:
            raise _invalid(f"the job wrote no {OUTPUT_FILE} at s3://{output_bucket}/{key}") from None
        folder = Path(scratch) / "package"
        folder.mkdir()
        with archive.open("rb") as stream:
            others = extract_output(stream, folder)
        archive.unlink()
        if not (folder / MODEL_FILE).exists():
            raise TrainingError(TrainingReason.NO_ONNX_MODEL, f"the job's {OUTPUT_FILE} holds no {MODEL_FILE}")
        if not (folder / DESCRIPTOR_FILE).exists():
            raise TrainingError(TrainingReason.NO_DESCRIPTOR, f"the job's {OUTPUT_FILE} holds no {DESCRIPTOR_FILE}")
        descriptor = parse_descriptor((folder / DESCRIPTOR_FILE).read_bytes())
        check_against_contract(descriptor, contract, model=model)
        scorer = OnnxScorer.load(folder / MODEL_FILE, descriptor)
        train = job["channels"]["train"]
        reference = stream_reference(
            lambda wanted: iter_parts(s3, bucket, train["parts"], columns=wanted),
            descriptor,
            scorer.predict,
            rows=train["rows"],
        )
        (folder / DESCRIPTOR_FILE).write_bytes(descriptor.to_bytes())  # canonical: the package is deterministic
        (folder / DRIFT_FILE).write_bytes(canonical_json(reference.to_json()))
        artifact = store_package(s3, bucket, model, folder)
    output = {"bucket": output_bucket, "key": key, "version_id": version, "sha256": sha256, "bytes": size}
    return Collected(artifact=artifact, descriptor=descriptor, output={**output, "other_files": others[:50]})

"""The model package: the one served format, whichever code trained the model.

A model is a directory of exactly these files, signed as a directory in the OpenSSF model-signing format (one
resource per file, mlvault.attestation.openssf) and stored as one deterministic tar (content-addressed, pinned by
version and digest like every artifact):

    model.onnx        the ONNX graph (the team's script writes it: skl2onnx, onnxmltools, torch.onnx...; the
                      built-in trainer writes one too)
    descriptor.json   mlvault's model descriptor (`ModelDescriptor`): the inputs and their types, the label, the
                      classes, the outputs to read; written by the training code, checked by mlvault against the
                      dataset's contract (`check_against_contract`) before anything is registered
    drift.json        the drift reference (mlvault.drift), computed by mlvault itself from the training split and the
                      model's own predictions on it: never taken from the training code

Inputs: one ONNX input per feature column, shape [N, 1], fed from the request's rows (or the held-out split) by
column name: `float` -> float32, `int64` -> int64, `string` -> string, `bool` -> bool. A null is fed as NaN to a
`float` input and as "" to a `string` input; `int64` and `bool` inputs take non-nullable columns only
(`check_against_contract` refuses a nullable one: those tensors have no null). Outputs: `label` names the
output holding the predicted class per row (string or int64 values, compared as strings with `classes`);
`probabilities` optionally names a [N, len(classes)] float output in the order of `classes`. Feeding and the
checks of a graph against its descriptor: mlvault.training.onnx_scoring and mlvault.serving.onnx_model.

The stored package (`package_key`): `models/<model>/sha256=<hex SHA-256 of the tar>/model.tar` in the model
bucket, pinned by version and digest; its registry record names the format (PACKAGE_FORMAT) and each file's
SHA-256. A registry record of the older single-file JSON artifact (record format mlvault.model/v1) is not a
package: deployment and serving refuse it (ServeReason.MODEL_FORMAT_UNSUPPORTED).

`claims` are numbers the training code reports about itself (e.g. its own validation accuracy): recorded in the
run record, never used as gates (mlvault computes every gate itself on the held-out split it kept).

Pure Python (tarfile, json): the serving function and the pipeline both import it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlvault.canonical import canonical_json
from mlvault.errors import TrainingError, TrainingReason

DESCRIPTOR_FORMAT = "mlvault.model-descriptor/v1"
PACKAGE_FORMAT = "mlvault.model-package/v1"
MODEL_FILE = "model.onnx"
DESCRIPTOR_FILE = "descriptor.json"
DRIFT_FILE = "drift.json"
FILES = (MODEL_FILE, DESCRIPTOR_FILE, DRIFT_FILE)  # the package, in the order it is packed
INPUT_TYPES = ("float", "int64", "string", "bool")
MAX_DESCRIPTOR_BYTES = 256 * 1024
MAX_PACKAGE_BYTES = 512 * 1024 * 1024  # a package larger than this is refused before it is read
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
# contract column types -> the descriptor input types that may feed them
_COMPATIBLE = {
    "int32": ("int64", "float"),
    "int64": ("int64", "float"),
    "float32": ("float",),
    "float64": ("float",),
    "string": ("string",),
    "bool": ("bool", "float"),
}


@dataclass(frozen=True)
class ModelInput:
    name: str  # the ONNX graph's input name
    column: str  # the contract column it is fed from
    type: str  # one of INPUT_TYPES

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "column": self.column, "type": self.type}


@dataclass(frozen=True)
class ModelDescriptor:
    model: str  # the model's name (models/<name>/, cdk.json `models`)
    dataset: str
    contract_version: str
    label: str  # the contract's label column
    classes: tuple[str, ...]
    inputs: tuple[ModelInput, ...]
    label_output: str
    probabilities_output: str | None = None
    framework: dict[str, str] = field(default_factory=dict)  # e.g. {"name": "scikit-learn", "version": "1.9.1"}
    claims: dict[str, Any] = field(default_factory=dict)  # numbers the training code reports: never gates

    def to_json(self) -> dict[str, Any]:
        outputs = {"label": self.label_output}
        if self.probabilities_output is not None:
            outputs["probabilities"] = self.probabilities_output
        return {
            "format": DESCRIPTOR_FORMAT,
            "model": self.model,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "label": self.label,
            "classes": list(self.classes),
            "inputs": [i.to_json() for i in self.inputs],
            "outputs": outputs,
            "framework": dict(self.framework),
            "claims": dict(self.claims),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(i.column for i in self.inputs)


def _invalid(detail: str) -> TrainingError:
    return TrainingError(TrainingReason.DESCRIPTOR_INVALID, detail)


def parse_descriptor(data: bytes) -> ModelDescriptor:
    """A descriptor from its bytes (bounded, strict: unknown fields are refused); DESCRIPTOR_INVALID naming the
    field otherwise."""
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise _invalid(f"{DESCRIPTOR_FILE}: {len(data)} bytes, at most {MAX_DESCRIPTOR_BYTES}")

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    try:
        raw = json.loads(data, parse_constant=no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _invalid(f"{DESCRIPTOR_FILE}: not JSON ({err})") from None
    except (ValueError, RecursionError) as err:
        raise _invalid(f"{DESCRIPTOR_FILE}: not plain JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != DESCRIPTOR_FORMAT:
        raise _invalid(f"{DESCRIPTOR_FILE}: expected an object with format {DESCRIPTOR_FORMAT!r}")
    allowed = {"format", "model", "dataset", "contract_version", "label", "classes", "inputs", "outputs"}
    allowed |= {"framework", "claims"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _invalid(f"{DESCRIPTOR_FILE}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    for name in ("model", "dataset", "contract_version", "label"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise _invalid(f"{DESCRIPTOR_FILE}: {name} must be a non-empty string")
    classes = raw.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise _invalid(f"{DESCRIPTOR_FILE}: classes must list at least two class names (strings)")
    if len(set(classes)) != len(classes):
        raise _invalid(f"{DESCRIPTOR_FILE}: classes are listed twice: {classes}")
    inputs = raw.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _invalid(f"{DESCRIPTOR_FILE}: inputs must be a non-empty list")
    parsed = []
    for index, item in enumerate(inputs):
        where = f"{DESCRIPTOR_FILE}: inputs[{index}]"
        if not isinstance(item, dict) or set(item) != {"name", "column", "type"}:
            raise _invalid(f"{where} must be exactly {{name, column, type}}")
        if not isinstance(item["name"], str) or not _NAME.match(item["name"]):
            raise _invalid(f"{where}.name must match {_NAME.pattern}, got {item['name']!r}")
        if not isinstance(item["column"], str) or not item["column"]:
            raise _invalid(f"{where}.column must be a contract column name")
        if item["type"] not in INPUT_TYPES:
            raise _invalid(f"{where}.type must be one of {', '.join(INPUT_TYPES)}, got {item['type']!r}")
        parsed.append(ModelInput(item["name"], item["column"], item["type"]))
    for what in ("name", "column"):
        values = [getattr(i, what) for i in parsed]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise _invalid(f"{DESCRIPTOR_FILE}: inputs share a {what}: {twice}")
    outputs = raw.get("outputs")
    if not isinstance(outputs, dict) or "label" not in outputs or set(outputs) - {"label", "probabilities"}:
        raise _invalid(f"{DESCRIPTOR_FILE}: outputs must be {{label[, probabilities]}} (ONNX output names)")
    for name, value in outputs.items():
        if not isinstance(value, str) or not _NAME.match(value):
            raise _invalid(f"{DESCRIPTOR_FILE}: outputs.{name} must be an ONNX output name, got {value!r}")
    for name in ("framework", "claims"):
        if not isinstance(raw.get(name, {}), dict):
            raise _invalid(f"{DESCRIPTOR_FILE}: {name} must be an object")
    framework = raw.get("framework", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in framework.items()):
        raise _invalid(f"{DESCRIPTOR_FILE}: framework must map names to strings")
    return ModelDescriptor(
        model=raw["model"],
        dataset=raw["dataset"],
        contract_version=raw["contract_version"],
        label=raw["label"],
        classes=tuple(classes),
        inputs=tuple(parsed),
        label_output=outputs["label"],
        probabilities_output=outputs.get("probabilities"),
        framework=dict(framework),
        claims=dict(raw.get("claims", {})),
    )


def check_against_contract(descriptor: ModelDescriptor, contract: Any, *, model: str) -> None:
    """The descriptor describes a model of this contract (mlvault.contracts.schema.Contract) and of this model
    name: its dataset and version, label, classes within the label's allowed values, every input a feature
    column of a compatible type (never the label). DESCRIPTOR_MISMATCH naming what disagrees."""

    def mismatch(detail: str) -> TrainingError:
        return TrainingError(TrainingReason.DESCRIPTOR_MISMATCH, detail)

    if descriptor.model != model:
        raise mismatch(f"the descriptor names model {descriptor.model!r}, the run trains {model!r}")
    if (descriptor.dataset, descriptor.contract_version) != (contract.dataset, contract.version):
        raise mismatch(
            f"the descriptor is for {descriptor.dataset} v{descriptor.contract_version}, the run's data for "
            f"{contract.dataset} v{contract.version}"
        )
    if descriptor.label != contract.label:
        raise mismatch(f"the descriptor's label is {descriptor.label!r}, the contract's is {contract.label!r}")
    label = contract.column(contract.label)
    if label is not None and label.allowed is not None:
        outside = [c for c in descriptor.classes if c not in {str(v) for v in label.allowed}]
        if outside:
            raise mismatch(f"classes {outside} are not values the contract allows for {contract.label}")
    for item in descriptor.inputs:
        column = contract.column(item.column)
        if column is None:
            raise mismatch(f"input {item.name!r} reads column {item.column!r}, which the contract does not declare")
        if item.column == contract.label:
            raise mismatch(f"input {item.name!r} reads the label column {item.column!r}")
        if item.type not in _COMPATIBLE.get(column.type, ()):
            raise mismatch(
                f"input {item.name!r} is {item.type}, column {item.column!r} is {column.type} "
                f"(compatible: {', '.join(_COMPATIBLE.get(column.type, ())) or 'none'})"
            )
        if item.type in ("int64", "bool") and column.nullable:
            raise mismatch(
                f"input {item.name!r} is {item.type}, column {item.column!r} is nullable: an {item.type} tensor "
                "has no null (declare the input float, or the column not nullable)"
            )


# ------------------------------------------------------------------------------------------------------ the tar


def package_key(model: str, digest: str) -> str:
    """Where a package is stored in the model bucket: content-addressed by the tar's SHA-256."""
    return f"models/{model}/sha256={digest}/model.tar"


def pack(folder: Path) -> bytes:
    """The package of a model directory holding exactly FILES: a deterministic, uncompressed tar (sorted by FILES'
    order, mode 0644, owner 0, mtime 0), so the same files always give the same bytes and digest."""
    out = io.BytesIO()
    pack_into(folder, out)
    return out.getvalue()


def pack_into(folder: Path, out: IO[bytes]) -> None:
    """`pack`, written to a stream (a spool file) without holding the files in memory."""
    present = sorted(p.name for p in folder.iterdir())
    if present != sorted(FILES):
        raise TrainingError(
            TrainingReason.TRAINING_OUTPUT_INVALID, f"a model package holds exactly {list(FILES)}, got {present}"
        )
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in FILES:
            path = folder / name
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = path.stat().st_size, 0o644, 0, 0, 0
            info.uname = info.gname = ""
            with path.open("rb") as source:
                tar.addfile(info, source)


class PackageError(ValueError):
    """The bytes are not a model package (the caller turns it into its own refusal: serving's MODEL_MALFORMED,
    MODEL_FILE_UNSUPPORTED, MODEL_FILE_EXTRA, MODEL_FILE_MISSING or MODEL_TOO_LARGE by `problem`; the pipeline's
    TRAINING_OUTPUT_INVALID)."""

    NOT_A_TAR = "not-a-tar"
    NOT_A_FILE = "not-a-file"  # a link, a directory, a device...
    UNEXPECTED = "unexpected"  # a member that is not one of FILES, or one of them twice
    MISSING = "missing"
    TOO_LARGE = "too-large"

    def __init__(self, detail: str, problem: str = NOT_A_TAR) -> None:
        super().__init__(detail)
        self.problem = problem


def unpack(stream: IO[bytes], folder: Path, *, limit: int = MAX_PACKAGE_BYTES) -> dict[str, Path]:
    """Extract a package into `folder` (which nobody else writes), fail closed: regular files only, exactly the
    names of FILES, each once, in at most `limit` bytes in all. Returns name -> path. Never follows a link, never
    writes outside `folder`."""
    written: dict[str, Path] = {}
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # a stream: no seeking, members in order
            for member in tar:
                if not member.isreg():
                    raise PackageError(f"{member.name!r} is not a regular file", PackageError.NOT_A_FILE)
                if member.name not in FILES or member.name in written:
                    detail = f"unexpected or repeated member {member.name!r}; a package holds {FILES}"
                    raise PackageError(detail, PackageError.UNEXPECTED)
                total += member.size
                if total > limit:
                    raise PackageError(f"more than {limit} bytes", PackageError.TOO_LARGE)
                source = tar.extractfile(member)
                target = folder / member.name
                with target.open("xb") as out:
                    while chunk := source.read(1024 * 1024):
                        out.write(chunk)
                written[member.name] = target
    except tarfile.TarError as err:
        raise PackageError(f"not a tar: {err}") from None
    missing = [name for name in FILES if name not in written]
    if missing:
        raise PackageError(f"missing {missing}", PackageError.MISSING)
    return written


def file_digests(files: Mapping[str, Path]) -> dict[str, str]:
    """name -> hex SHA-256 of each file of a package (streamed)."""
    digests = {}
    for name, path in files.items():
        sha = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := source.read(1024 * 1024):
                sha.update(chunk)
        digests[name] = sha.hexdigest()
    return digests

"""What runs is what was deployed: functions and layers run from their code (gap 21).

21. Deployed code. moto ignores S3ObjectVersion (CreateFunction, UpdateFunctionCode and PublishLayerVersion take
   the latest version of the key) and shares a published version's Code with $LATEST; the local runtime ran
   every function from its synthesized asset in cdk.out, so UpdateFunctionCode never reached it. AWS runs the
   code a function version was created, updated or published with: the S3 object version named (NoSuchVersion
   refused) or the zip uploaded, with the layer versions of that configuration. Here moto reads the exact
   object version, a published version keeps its own code, and the runtime (runtime.py) runs each function
   version from `DeployedCode`: its zip (and each first-party layer's) extracted once per SHA-256 into
   `<state dir>/code/<sha256>/`, its handler, timeout, memory and execution role as that version has them.
   Third-party layers keep being served from the local venv (their wheels target Lambda's Python): their
   content is the small zip the provisioner publishes instead of ~100 MB (`python/` plus MANIFEST, a JSON
   manifest of the distributions), a layer object like any other (signed and checked like any other); a layer
   zip holding that manifest is provided by the venv.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

MANIFEST = "python/.localcloud-third-party-layer.json"  # a layer zip holding it is provided by the local venv


# What Lambda's Python runtime itself provides besides the standard library: boto3 and its dependencies. Anything
# else a function imports must come from its code or its layers (the worker refuses the venv's copy otherwise).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@dataclass(frozen=True)
class Layer:
    arn: str
    directory: Path | None  # extracted first-party layer, None for a third-party layer served from the venv
    name: str
    packages: tuple[str, ...] = ()  # a third-party layer's top-level import names (its manifest)

    @property
    def third_party(self) -> bool:
        return self.directory is None


@dataclass(frozen=True)
class DeployedCode:
    """What a function version runs: its extracted code, layers and configuration."""

    handler: str
    code_dir: Path
    layers: tuple[Layer, ...]
    timeout: int
    memory: int
    role_arn: str
    identity: str  # changes whenever any of the above does: workers are reused only for the same identity

    @property
    def python_path(self) -> list[str]:
        return [str(self.code_dir)] + [str(layer.directory / "python") for layer in self.layers if layer.directory]

    @property
    def provided_packages(self) -> list[str]:
        """The top-level packages the function may take from the venv: the runtime's and its third-party layers'."""
        return sorted({*RUNTIME_PACKAGES, *(p for layer in self.layers for p in layer.packages)})


class CodeStore:
    """Zips extracted under the state directory, once per content digest."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()

    def extract(self, data: bytes) -> Path:
        digest = hashlib.sha256(data).hexdigest()
        target = self._root / digest
        with self._lock:
            if not target.is_dir():
                staging = self._root / f".{digest}.tmp"
                staging.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(staging)  # extractall refuses absolute and parent paths
                staging.rename(target)
        return target

    def deployed(self, fn: Any, layer_of: Any) -> DeployedCode:
        """The code and configuration moto's function object (one version) runs with."""
        if not fn.code_bytes:
            raise RuntimeError(f"function {fn.function_name} version {fn.version} has no code")
        layers = []
        for entry in fn.layers:
            layer = layer_of(entry["Arn"])
            if layer is None:
                raise RuntimeError(f"layer version {entry['Arn']} of {fn.function_name} does not exist")
            data = bytes(layer.code_bytes)
            third_party = _manifest(data)
            name = third_party["asset"] if third_party else entry["Arn"].split(":")[6]
            if third_party:
                layers.append(Layer(entry["Arn"], None, name, tuple(third_party.get("packages", ()))))
            else:
                layers.append(Layer(entry["Arn"], self.extract(data), name))
        parts = [fn.handler, fn.code_sha_256, *(layer.arn for layer in layers), str(fn.timeout), str(fn.memory_size)]
        return DeployedCode(
            handler=fn.handler,
            code_dir=self.extract(bytes(fn.code_bytes)),
            layers=tuple(layers),
            timeout=int(fn.timeout),
            memory=int(fn.memory_size),
            role_arn=fn.role,
            identity=hashlib.sha256("\n".join([*parts, fn.role]).encode()).hexdigest()[:16],
        )


def _manifest(data: bytes) -> dict[str, Any] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if MANIFEST in archive.namelist():
                return json.loads(archive.read(MANIFEST))
    except zipfile.BadZipFile:
        raise RuntimeError("a layer's content is not a zip file") from None
    return None


def top_level_packages(site_packages: Path) -> list[str]:
    """The import names a pip-built layer's python/ folder provides: its packages, modules and extension modules
    (not the dist-info, .libs and bin folders, nor caches)."""
    names = set()
    for path in site_packages.iterdir():
        if path.name.endswith((".dist-info", ".libs", ".pth")) or path.name in ("__pycache__", "bin"):
            continue
        if path.is_dir():
            names.add(path.name)
        elif path.suffix in (".py", ".so"):
            names.add(path.name.split(".", 1)[0])
    return sorted(names)


def third_party_layer_zip(manifest: dict[str, Any]) -> bytes:
    """The content the provisioner publishes for a third-party layer: a zip of its manifest only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(MANIFEST, date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(info, json.dumps(manifest, indent=1, sort_keys=True))
    return buffer.getvalue()


def install(cloud: LocalCloud) -> None:
    """Patch moto so that S3ObjectVersion is honoured and a published version keeps its own code."""
    from moto.awslambda.models import LambdaFunction, LambdaStorage, LayerVersion

    original_set_code = LambdaFunction._set_function_code
    original_layer_init = LayerVersion.__init__
    original_publish = LambdaStorage.publish_version

    def _set_function_code(self: Any, updated_spec: dict[str, Any]) -> None:
        from_update = updated_spec is not self.code
        original_set_code(self, updated_spec)
        if from_update and updated_spec.get("DryRun"):
            return
        if "S3Bucket" in updated_spec and "ZipFile" not in updated_spec:
            if updated_spec.get("S3ObjectVersion"):
                _versioned(self, updated_spec)
            if from_update:
                self.code = {**self.code, "S3ObjectVersion": updated_spec.get("S3ObjectVersion")}
                if self.code["S3ObjectVersion"] is None:
                    del self.code["S3ObjectVersion"]

    def layer_init(self: Any, spec: dict[str, Any], account_id: str, region: str) -> None:
        original_layer_init(self, spec, account_id, region)
        if spec["Content"].get("S3ObjectVersion") and "ZipFile" not in spec["Content"]:
            _versioned(self, spec["Content"])

    def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
        version = original_publish(self, name_or_arn, description)
        if version is not None and version.version != "$LATEST":
            version.code = copy.deepcopy(version.code)  # a version is immutable: its code is its own
            version.layers = copy.deepcopy(version.layers)
        return version

    LambdaFunction._set_function_code = _set_function_code
    LayerVersion.__init__ = layer_init
    LambdaStorage.publish_version = publish_version


def _versioned(target: Any, spec: dict[str, Any]) -> None:
    """Replace the code moto read (the latest version of the key) by the version the spec names."""
    import base64

    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.s3.models import s3_backends

    try:
        key = s3_backends[target.account_id]["aws"].get_object(
            spec["S3Bucket"], spec["S3Key"], version_id=spec["S3ObjectVersion"]
        )
    except Exception:  # noqa: BLE001 - moto's NoSuchVersion: Lambda's own error below
        key = None
    if key is None:
        raise InvalidParameterValueException(
            "Error occurred while GetObject. S3 Error Code: NoSuchVersion. S3 Error Message: The specified version "
            "does not exist."
        )
    data = bytes(key.value)
    digest = hashlib.sha256(data)
    target.code_bytes, target.code_size = data, len(data)
    target.code_sha_256 = base64.b64encode(digest.digest()).decode()
    target.code_digest = digest.hexdigest()

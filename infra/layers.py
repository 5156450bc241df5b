"""Trimming third-party Lambda layers after pip installs them (stdlib only; run by the Makefile).

Lambda allows 250 MB for a function's code and all its layers together, unzipped. Two layers need trimming:
the pyarrow layer (layers/arrow) and the onnxruntime layer (layers/onnx, which also carries numpy: the only numpy
of any function, since pyarrow 26 needs none).

pyarrow's wheel is ~166 MB unzipped.
The verifier needs CSV, JSON Lines, Parquet and compute (with dataset/acero and libarrow_substrait, which every
pyarrow extension module links against), so what goes is what no mlvault function can reach:

- Flight, ORC, Gandiva, CUDA and the remote filesystems (S3, GCS, Azure, HDFS): the verifier reads objects with
  boto3 and hands pyarrow a stream or a local file, never a URI;
- tests, benchmarks, the C++ headers and sources (include/, src/), Cython sources and declarations (.pyx, .pxd,
  .pxi), CMake and pkg-config files;
- the duplicate copies of shared libraries that a wheel carries for linking (libX.so and libX.so.N.M.P beside
  libX.so.N, the soname the loader opens): wheels cannot hold symlinks, so each is a full copy.

`pyarrow.libs` (vendored system libraries, when a wheel has them) is never touched. The dist-info RECORD is
rewritten to list only what is left.

onnxruntime's wheel is ~73 MB and numpy's ~58 MB unzipped. The functions only run `InferenceSession` on the CPU
(serving and evaluating a model package), so what goes is:

- onnxruntime's tools, transformers (model optimisers), quantization, backend (the ONNX backend-test API, which
  needs the `onnx` package) and datasets (sample models); and `capi/libonnxruntime.so.*`, the C API library for
  other languages: the Python extension module links ONNX Runtime in statically and never loads it;
- numpy's tests, type stubs (.pyi), Cython declarations (.pxd), C headers and static libraries (_core/include,
  _core/lib), f2py (a Fortran wrapper generator), the PyInstaller hook and the test-only extension modules
  (_multiarray_tests, _simd).

`numpy.libs` (OpenBLAS and its Fortran runtime) is never touched (GUIDE.md section 7).

onnx's wheel (layers/onnxgraph, for the built-in trainer's graph writer) is ~31 MB unzipped; its backend test data
(~15 MB), C++ sources, headers, .proto files and stubs go.

    python infra/layers.py build/layers/arrow/python     # trims every package it knows that is present
    python infra/layers.py build/layers/onnx/python
    python infra/layers.py build/layers/onnxgraph/python
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sys
from pathlib import Path

# Directories of the pyarrow package no function needs.
PYARROW_DIRS = ("tests", "include", "includes", "src")
# Modules and libraries by name stem (the part before the first dot); each stem also covers its .so variants.
PYARROW_STEMS = (
    # Flight (RPC) and its native libraries
    "flight",
    "_flight",
    "libarrow_flight",
    "libarrow_python_flight",
    # ORC
    "orc",
    "_orc",
    "_dataset_orc",
    # Gandiva (the wheel ships only its Cython source; a build with it would ship these)
    "gandiva",
    "_gandiva",
    "libgandiva",
    # CUDA (not built into the wheels; the Python module cannot work without it)
    "cuda",
    "_cuda",
    # remote filesystems: S3 (with the AWS SDK for C++ inside libarrow_s3), GCS, Azure, HDFS
    "_s3fs",
    "libarrow_s3",
    "_gcsfs",
    "libarrow_gcs",
    "_azurefs",
    "libarrow_azure",
    "_hdfs",
    # tests and benchmarks
    "conftest",
    "_pyarrow_cpp_tests",
    "benchmark",
)
# Kept no matter what the rules above say: the modules the verifier imports and the libraries they link.
PYARROW_REQUIRED = (
    "__init__.py",
    "lib.*",
    "_csv.*",
    "_json.*",
    "_parquet.*",
    "_compute.*",
    "_dataset.*",
    "_acero.*",
    "_fs.*",
    "libarrow.so.*",
    "libarrow_compute.so.*",
    "libarrow_dataset.so.*",
    "libarrow_acero.so.*",
    "libarrow_substrait.so.*",
    "libarrow_python.so.*",
    "libparquet.so.*",
)
SOURCE_SUFFIXES = (".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp", ".cmake", ".pc")
BUILD_NAMES = ("CMakeLists.txt",)
BUILD_DIRS = ("cmake", "pkgconfig")

_SONAME_RE = re.compile(r"^(?P<base>lib[\w-]+\.so)(?P<version>(\.\d+)*)$")


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())


def _remove(path: Path) -> int:
    size = _size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return size


def _linker_copies(package: Path) -> list[Path]:
    """libX.so and libX.so.N.M.P when libX.so.N (the soname) is present."""
    versions: dict[str, list[tuple[int, Path]]] = {}
    for path in package.iterdir():
        match = _SONAME_RE.match(path.name)
        if match and path.is_file():
            depth = match["version"].count(".")
            versions.setdefault(match["base"], []).append((depth, path))
    extra: list[Path] = []
    for copies in versions.values():
        if any(depth == 1 for depth, _ in copies):
            extra.extend(path for depth, path in copies if depth != 1)
    return extra


def _rewrite_record(site_packages: Path, distribution: str = "pyarrow") -> None:
    for record in site_packages.glob(f"{distribution}-*.dist-info/RECORD"):
        rows = list(csv.reader(io.StringIO(record.read_text())))
        kept = [row for row in rows if row and (site_packages / row[0]).exists()]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        record.write_text(out.getvalue())


def trim_pyarrow(site_packages: Path) -> int:
    """Remove from site_packages/pyarrow what no mlvault function needs; return the bytes removed.

    Idempotent: a second run removes nothing. Raises FileNotFoundError when there is no pyarrow to trim, or when
    a module the verifier needs is missing afterwards (a pyarrow release that moved things: look before shipping).
    """
    package = Path(site_packages) / "pyarrow"
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"no pyarrow package in {site_packages}")
    doomed: list[Path] = [package / d for d in PYARROW_DIRS if (package / d).is_dir()]
    for path in package.iterdir():
        if path.is_file() and path.name.split(".", 1)[0] in PYARROW_STEMS:
            doomed.append(path)
    doomed.extend(_linker_copies(package))
    for path in package.rglob("*"):
        if any(path.is_relative_to(d) for d in doomed):
            continue
        build_dir = path.is_dir() and path.name in BUILD_DIRS
        source = path.is_file() and (path.suffix in SOURCE_SUFFIXES or path.name in BUILD_NAMES)
        if build_dir or source:
            doomed.append(path)
    removed = 0
    for path in sorted(set(doomed)):
        if path.exists() or path.is_symlink():
            removed += _remove(path)
    missing = [pattern for pattern in PYARROW_REQUIRED if not any(package.glob(pattern))]
    if missing:
        raise FileNotFoundError(f"pyarrow in {site_packages} lacks {missing} after trimming")
    _rewrite_record(Path(site_packages))
    return removed


# --- onnxruntime and numpy (layers/onnx) ---------------------------------------------------------------------

# Sub-packages of onnxruntime no function imports (InferenceSession needs onnxruntime/__init__.py and capi/).
ONNXRUNTIME_DIRS = ("tools", "transformers", "quantization", "backend", "datasets")
# capi/ files by name stem: the C API shared library (the pybind module has ONNX Runtime linked in statically).
ONNXRUNTIME_CAPI_STEMS = ("libonnxruntime",)
ONNXRUNTIME_REQUIRED = (
    "__init__.py",
    "capi/__init__.py",
    "capi/_pybind_state.py",
    "capi/onnxruntime_inference_collection.py",
    "capi/onnxruntime_validation.py",
    "capi/onnxruntime_pybind11_state.*",
)
# numpy: directories (at any depth) and files no function needs at run time.
NUMPY_DIR_NAMES = ("tests",)
NUMPY_DIRS = ("f2py", "_pyinstaller", "_core/include", "_core/lib")
NUMPY_FILE_SUFFIXES = (".pyi", ".pxd")
NUMPY_FILE_STEMS = ("_multiarray_tests", "_simd", "conftest")  # the test-only extension modules, pytest's conftest
NUMPY_REQUIRED = ("__init__.py", "_core/_multiarray_umath.*", "linalg/_umath_linalg.*", "random/_generator.*")


def _trim(package: Path, doomed: list[Path], required: tuple[str, ...], what: str) -> int:
    removed = 0
    for path in sorted(set(doomed)):
        if path.exists() or path.is_symlink():
            removed += _remove(path)
    missing = [pattern for pattern in required if not any(package.glob(pattern))]
    if missing:
        raise FileNotFoundError(f"{what} in {package.parent} lacks {missing} after trimming")
    return removed


def trim_onnxruntime(site_packages: Path) -> int:
    """Remove from site_packages/onnxruntime what `InferenceSession` on the CPU does not need; return the bytes
    removed. Idempotent; FileNotFoundError when there is no onnxruntime, or when a module it needs is gone."""
    package = Path(site_packages) / "onnxruntime"
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"no onnxruntime package in {site_packages}")
    doomed = [package / d for d in ONNXRUNTIME_DIRS if (package / d).is_dir()]
    capi = package / "capi"
    if capi.is_dir():
        doomed += [p for p in capi.iterdir() if p.is_file() and p.name.split(".", 1)[0] in ONNXRUNTIME_CAPI_STEMS]
    removed = _trim(package, doomed, ONNXRUNTIME_REQUIRED, "onnxruntime")
    _rewrite_record(Path(site_packages), "onnxruntime")
    return removed


def trim_numpy(site_packages: Path) -> int:
    """Remove from site_packages/numpy its tests, stubs, headers, f2py and test-only extension modules; return the
    bytes removed. numpy.libs is never touched. Idempotent; FileNotFoundError when there is no numpy, or when a
    module it needs is gone."""
    package = Path(site_packages) / "numpy"
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"no numpy package in {site_packages}")
    doomed = [package / d for d in NUMPY_DIRS if (package / d).is_dir()]
    for path in package.rglob("*"):
        if any(path.is_relative_to(d) for d in doomed):
            continue
        test_dir = path.is_dir() and path.name in NUMPY_DIR_NAMES
        stub_or_test = path.is_file() and (
            path.suffix in NUMPY_FILE_SUFFIXES or path.name.split(".", 1)[0] in NUMPY_FILE_STEMS
        )
        if test_dir or stub_or_test:
            doomed.append(path)
    removed = _trim(package, doomed, NUMPY_REQUIRED, "numpy")
    _rewrite_record(Path(site_packages), "numpy")
    return removed


# --- onnx (layers/onnxgraph) ------------------------------------------------------------------------------

# onnx's backend test suite (its node test models and data, ~15 MB) and the C++ sources and headers of its wheel:
# the graph writer imports onnx.helper, which needs neither.
ONNX_DIRS = ("backend/test",)
ONNX_FILE_SUFFIXES = (".cc", ".h", ".proto", ".proto3", ".pyi")
ONNX_REQUIRED = ("__init__.py", "helper.py", "onnx_pb.py", "onnx_cpp2py_export.*")


def trim_onnx(site_packages: Path) -> int:
    """Remove from site_packages/onnx its backend test data, C++ sources, headers and stubs; return the bytes
    removed. Idempotent; FileNotFoundError when there is no onnx, or when a module it needs is gone."""
    package = Path(site_packages) / "onnx"
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"no onnx package in {site_packages}")
    doomed = [package / d for d in ONNX_DIRS if (package / d).is_dir()]
    doomed += [
        p
        for p in package.rglob("*")
        if p.is_file() and p.suffix in ONNX_FILE_SUFFIXES and not any(p.is_relative_to(d) for d in doomed)
    ]
    removed = _trim(package, doomed, ONNX_REQUIRED, "onnx")
    _rewrite_record(Path(site_packages), "onnx")
    return removed


TRIMMERS = {"pyarrow": trim_pyarrow, "onnxruntime": trim_onnxruntime, "numpy": trim_numpy, "onnx": trim_onnx}


def trim_layer(site_packages: Path) -> dict[str, int]:
    """Trim every package of TRIMMERS present in site_packages: package -> bytes removed. FileNotFoundError when
    none is present (a layer this module does not know)."""
    site_packages = Path(site_packages)
    present = [name for name in TRIMMERS if (site_packages / name / "__init__.py").is_file()]
    if not present:
        raise FileNotFoundError(f"none of {sorted(TRIMMERS)} in {site_packages}")
    return {name: TRIMMERS[name](site_packages) for name in present}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python infra/layers.py SITE_PACKAGES  (e.g. build/layers/arrow/python)", file=sys.stderr)
        return 2
    site_packages = Path(argv[0])
    before = _size(site_packages)
    removed = trim_layer(site_packages)
    mib = 1024 * 1024
    total = sum(removed.values())
    detail = ", ".join(f"{name} {size / mib:.1f} MiB" for name, size in removed.items())
    print(
        f"layer {site_packages}: {before / mib:.1f} MiB -> {(before - total) / mib:.1f} MiB unzipped (trimmed {detail})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

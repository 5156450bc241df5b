"""Trimming third-party Lambda layers after pip installs them (stdlib only; run by the Makefile).

pyarrow's wheel is ~166 MB unzipped; Lambda allows 250 MB for a function's code and all its layers together.
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

    python infra/layers.py build/layers/arrow/python
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


def _rewrite_record(site_packages: Path) -> None:
    for record in site_packages.glob("pyarrow-*.dist-info/RECORD"):
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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python infra/layers.py SITE_PACKAGES  (e.g. build/layers/arrow/python)", file=sys.stderr)
        return 2
    site_packages = Path(argv[0])
    before = _size(site_packages)
    removed = trim_pyarrow(site_packages)
    mib = 1024 * 1024
    print(
        f"pyarrow layer {site_packages}: {before / mib:.1f} MiB -> {(before - removed) / mib:.1f} MiB unzipped "
        f"({removed / mib:.1f} MiB trimmed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

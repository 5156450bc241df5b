"""The onnxruntime layer's trim keeps what `InferenceSession` needs.

infra/layers.py trims the Lambda wheels (cp314) of onnxruntime and numpy; the local venv's copies (cp311) have the
same layout, so the trim is applied to copies of them, and a fresh interpreter that takes onnxruntime and numpy from
those copies only runs two models: a graph of the standard domain (what the built-in trainer writes) and a
scikit-learn gradient-boosted classifier converted by skl2onnx (the `ai.onnx.ml` tree ensemble the credit example
writes), with string labels and probabilities.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.layers import trim_layer, trim_numpy, trim_onnxruntime

PROBE = r"""
import json, sys
trimmed, work = sys.argv[1:3]
sys.path[:0] = [trimmed]
for name in ("onnx", "sklearn", "skl2onnx", "pyarrow"):  # none of them is in the layer
    sys.modules[name] = None

import numpy as np
import onnxruntime as ort

out = {"modules": sorted({getattr(m, "__file__", None) or "" for n, m in sys.modules.items()
                          if n.split(".")[0] in ("onnxruntime", "numpy")} - {""})}

linear = ort.InferenceSession(f"{work}/linear.onnx", providers=["CPUExecutionProvider"])
x = np.array([[1.0], [-2.0], [3.0]], dtype=np.float32)
y = np.array([[0.5], [0.5], [-4.0]], dtype=np.float32)
(label,) = linear.run(["label"], {"x": x, "y": y})
out["linear"] = label.tolist()

trees = ort.InferenceSession(f"{work}/gbm.onnx", providers=["CPUExecutionProvider"])
rows = np.array(json.loads(open(f"{work}/rows.json").read()), dtype=np.float32)
labels, probabilities = trees.run(None, {trees.get_inputs()[0].name: rows})
out["gbm_labels"] = [str(v) for v in labels]
out["gbm_probabilities"] = np.asarray(probabilities, dtype=float).tolist()
out["providers"] = ort.get_available_providers()

gone = {}
for name in ("onnxruntime.tools", "onnxruntime.transformers", "onnxruntime.quantization", "numpy.f2py"):
    try:
        __import__(name)
        gone[name] = False
    except ImportError:
        gone[name] = True
out["gone"] = gone
print(json.dumps(out))
"""


def _venv_package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} is not installed in the venv (make setup)"
    assert spec.origin, name
    return Path(spec.origin).parent


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    site = tmp_path_factory.mktemp("onnx-layer") / "python"
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("onnxruntime", "numpy"):
        source = _venv_package(name)
        shutil.copytree(source, site / name, ignore=ignore)
        libs = source.parent / f"{name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, site / libs.name)
    return site, trim_layer(site)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, list[str], list[list[float]]]:
    """The two models, written and scored here with the venv's full packages (the expected answers)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    work = tmp_path_factory.mktemp("onnx-models")
    # label = "pos" if x + y > 0 else "neg", as string classes through a standard-domain graph
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "y"], ["s"]),
            helper.make_node("Greater", ["s", "zero"], ["positive"]),
            helper.make_node("Cast", ["positive"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["classes", "index"], ["label"]),
        ],
        "linear",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1]),
        ],
        [helper.make_tensor_value_info("label", TensorProto.STRING, [None, 1])],
        initializer=[
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("classes", TensorProto.STRING, [2], [b"neg", b"pos"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (work / "linear.onnx").write_bytes(model.SerializeToString())

    rng = np.random.default_rng(7)
    features = rng.normal(size=(400, 3)).astype(np.float32)
    target = np.where(features[:, 0] + 0.5 * features[:, 1] > 0, "approve", "decline")
    gbm = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(features, target)
    onx = to_onnx(gbm, features[:1], options={id(gbm): {"zipmap": False}}, target_opset=17)
    (work / "gbm.onnx").write_bytes(onx.SerializeToString())
    rows = features[:8].tolist()
    (work / "rows.json").write_text(json.dumps(rows))
    return work, [str(v) for v in gbm.predict(features[:8])], gbm.predict_proba(features[:8]).tolist()


def test_the_trim_removes_what_inference_does_not_need(trimmed):
    site, removed = trimmed
    ort, np_ = site / "onnxruntime", site / "numpy"
    assert removed["onnxruntime"] > 20 * 1024 * 1024, removed  # the C API library alone is ~35 MB
    assert removed["numpy"] > 5 * 1024 * 1024, removed
    for gone in ("tools", "transformers", "quantization", "backend", "datasets"):
        assert not (ort / gone).exists(), gone
    assert not list((ort / "capi").glob("libonnxruntime.so*"))
    assert list((ort / "capi").glob("onnxruntime_pybind11_state.*"))
    assert not [p for p in np_.rglob("tests") if p.is_dir()]
    assert not list(np_.rglob("*.pyi"))
    for gone in ("f2py", "_core/include", "_core/lib", "_pyinstaller"):
        assert not (np_ / gone).exists(), gone
    assert list((np_ / "_core").glob("_multiarray_umath.*"))
    if (site / "numpy.libs").exists():  # never touched
        assert list((site / "numpy.libs").iterdir())
    assert trim_onnxruntime(site) == 0
    assert trim_numpy(site) == 0


def test_models_run_from_the_trimmed_copy_alone(trimmed, models):
    site, _ = trimmed
    work, labels, probabilities = models
    # -I: no PYTHON* variables, no user site; the trimmed copy comes first on the path, and every onnxruntime and
    # numpy module loaded must come from it (the venv's own copies are further down the path).
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(site), str(work)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["modules"]
    assert all(Path(m).is_relative_to(site) for m in out["modules"]), out["modules"]
    assert out["linear"] == [["pos"], ["neg"], ["neg"]]
    assert out["gbm_labels"] == labels
    assert out["gbm_probabilities"] == [pytest.approx(p, abs=1e-5) for p in probabilities]
    assert "CPUExecutionProvider" in out["providers"]
    assert all(out["gone"].values()), out["gone"]


def test_the_layer_requirements_pin_what_the_venv_runs():
    """The layer ships the versions the tests prove (requirements.txt pins the venv's)."""
    from tests.conftest import ROOT

    pins = dict(
        line.split("==")
        for line in (ROOT / "layers/onnx/requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    venv = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    constraints = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    assert set(pins) == {"onnxruntime", "numpy"}
    assert pins["onnxruntime"] == venv["onnxruntime"] == constraints["onnxruntime"]
    assert pins["numpy"] == constraints["numpy"]


def test_trim_refuses_a_directory_without_a_known_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="none of"):
        trim_layer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no onnxruntime"):
        trim_onnxruntime(tmp_path)

"""The evaluate step's measurements: a model package's ONNX graph (onnxruntime, one thread) predicts mlvault's
held-out split batch by batch into the gates' tally (mlvault.training.gates), then mlvault times one-row
predictions and measures the peak memory of a batch prediction itself. Nothing the training code reports is used.

The held-out rows come as Arrow record batches: the sagemaker engine's held-out parts (written by the prepare step,
never a channel; streamed part by part, so memory stays flat in rows), or the lambda engine's manifest re-read and
split again (mlvault.training.data; bounded by its max_rows). Predictions run one batch at a time, and a sample of
at most max(latency_samples, memory_batch_rows) rows is kept for the timing and memory measurements.

Memory: the peak resident set while a new onnxruntime session of the graph loads and predicts `memory_batch_rows`
rows (what a fresh execution environment needs to serve a batch: the weights, onnxruntime's own memory arena and
the batch's tensors), in a fresh Python process (so that memory freed earlier and kept by the allocator is not
reused unseen), above its resident set once numpy, onnxruntime and the inputs were loaded, read from
/proc/self/status after resetting its high-water mark (/proc/self/clear_refs, Linux): this counts onnxruntime's
native allocations, which tracemalloc cannot see. Where that is not available the gate cannot be measured: it
fails and says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlvault.contracts.schema import Contract
from mlvault.training.data import as_strings
from mlvault.training.gates import GateReport, GateResult, Gates, HeldoutTally, evaluate
from mlvault.training.onnx_scoring import OnnxScorer

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status(name: str) -> int:
    match = re.search(rf"^{name}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"no {name} in {_STATUS}")
    return int(match.group(1)) * 1024


def peak_memory(run: Callable[[], Any]) -> tuple[int | None, str]:
    """(bytes above the resident set before `run` at its peak, or None, and how it was measured), in this process:
    memory a previous call freed and the allocator kept is not counted again (see `model_memory`). Where the
    high-water mark cannot be reset (/proc/self/clear_refs not writable), the process's own peak so far stands in
    for the resident set before: exact in a fresh process whose peak is its resident set."""
    try:
        before = _status("VmRSS")
    except OSError as err:
        run()
        return None, f"cannot be measured here (the resident set of Linux's /proc: {err})"
    try:
        _CLEAR_REFS.write_text("5")  # resets VmHWM (the peak resident set) to the current resident set
        how = "(peak resident set)"
    except OSError:
        before = max(before, _status("VmHWM"))
        how = "(peak resident set, above the peak before)"
    run()
    return max(0, _status("VmHWM") - before), how


def model_memory(model: Path, label_output: str, feed: dict[str, Any]) -> tuple[int | None, str]:
    """The peak memory of loading `model` and predicting `feed`, measured in a fresh Python process (its own
    allocator, nothing freed earlier to reuse): the resident set's high-water mark above what the process held
    once numpy, onnxruntime and the inputs were loaded."""
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlvault-memory-") as scratch:
        inputs = Path(scratch) / "feed.pickle"
        inputs.write_bytes(pickle.dumps(feed, protocol=pickle.HIGHEST_PROTOCOL))  # ours, in a private folder
        code = "import sys; from mlvault.training.evaluation import _measure; _measure(*sys.argv[1:])"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run(
            [sys.executable, "-c", code, str(model), label_output, str(inputs)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        return None, f"cannot be measured here: {(done.stderr or done.stdout).strip()[-300:]}"
    return int(done.stdout.strip()), "(peak resident set, a fresh process)"


def _measure(model: str, label_output: str, inputs: str) -> None:
    import pickle

    import onnxruntime as ort

    from mlvault.training.onnx_scoring import session_options

    feed = pickle.loads(Path(inputs).read_bytes())  # noqa: S301 - written by model_memory, in its private folder

    def run() -> None:
        session = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
        session.run([label_output], feed)

    peak, _ = peak_memory(run)
    print("" if peak is None else peak)


class _Sample:
    """The first `rows` held-out rows, kept for timing and memory."""

    def __init__(self, rows: int) -> None:
        self.wanted = rows
        self.batches: list[Any] = []
        self.rows = 0

    def add(self, batch: Any) -> None:
        if self.rows < self.wanted:
            piece = batch.slice(0, self.wanted - self.rows)
            self.batches.append(piece)
            self.rows += piece.num_rows

    def table(self) -> Any:
        import pyarrow as pa

        return pa.Table.from_batches(self.batches) if self.batches else None


def tally_batch(tally: HeldoutTally, batch: Any, predictions: Any, contract: Contract) -> None:
    """`tally.add` of one batch, counted by Arrow (C++) rather than row by row: labels and groups as strings
    (the gates compare them as strings), a null group as NULL_GROUP."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlvault.training.gates import NULL_GROUP

    columns = [contract.label, *contract.protected_attributes]
    if any(pa.types.is_boolean(batch.schema.field(c).type) for c in columns):  # str(True) is not Arrow's "true"
        groups = {a: batch.column(a).to_pylist() for a in contract.protected_attributes}
        tally.add(batch.column(contract.label).to_pylist(), predictions.tolist(), groups)
        return
    predicted = pa.array(predictions, type=pa.string())
    tally.rows += batch.num_rows
    tally.hits += pc.sum(pc.equal(as_strings(batch.column(contract.label)), predicted)).as_py() or 0
    for attribute in contract.protected_attributes:
        groups = pc.fill_null(as_strings(batch.column(attribute)), NULL_GROUP)
        counted = pa.table({"g": groups, "p": predicted}).group_by(["g", "p"]).aggregate([([], "count_all")])
        found = (counted.column(name).to_pylist() for name in ("g", "p", "count_all"))
        for group, prediction, count in zip(*found, strict=True):
            tally.sizes[attribute][group] += count
            tally.chosen[attribute][group, prediction] += count


def evaluate_package(
    scorer: OnnxScorer,
    batches: Iterable[Any],
    contract: Contract,
    gates: Gates,
    *,
    artifact: dict[str, Any],
    inputs: GateResult,
    manifest_digest: str | None,
) -> GateReport:
    """The gate report of the package's model on the held-out batches."""
    descriptor = scorer.descriptor
    tally = HeldoutTally(descriptor.classes, contract.protected_attributes)
    sample = _Sample(max(gates.latency_samples, gates.memory_batch_rows))
    for batch in batches:
        if batch.num_rows == 0:
            continue
        tally_batch(tally, batch, scorer.predict(batch), contract)
        sample.add(batch)
    latency: list[float] = []
    memory, memory_detail = None, "no held-out rows to predict on"
    table = sample.table()
    if table is not None:
        for i in range(gates.latency_samples):
            row = table.slice(i % table.num_rows, 1)
            start = time.perf_counter_ns()
            scorer.predict(row)
            latency.append((time.perf_counter_ns() - start) / 1e6)
        rows = table.slice(0, gates.memory_batch_rows)
        if rows.num_rows < gates.memory_batch_rows:  # fewer held-out rows than the batch: cycle them
            import pyarrow as pa

            repeats = -(-gates.memory_batch_rows // rows.num_rows)
            rows = pa.concat_tables([rows] * repeats).slice(0, gates.memory_batch_rows)
        if scorer.path is None:
            memory, how = None, "cannot be measured: the model has no file"
        else:
            memory, how = model_memory(scorer.path, descriptor.label_output, scorer.feed(rows))
        memory_detail = f"loading the model and predicting {rows.num_rows} rows {how}" if memory is not None else how
    return evaluate(
        tally,
        contract,
        gates,
        artifact_bytes=artifact["bytes"],
        latency_ms=latency,
        memory_bytes=memory,
        inputs=inputs,
        artifact_digest=artifact["sha256"],
        manifest_digest=manifest_digest,
        claims=descriptor.claims,
        memory_detail=memory_detail,
    )


def heldout_from_manifest(s3: Any, manifest: Any, contract: Contract, *, seed: int, heldout_fraction: float) -> Any:
    """The lambda engine's held-out rows as batches: the manifest read again (verified) and split again. They are
    gathered as Arrow batches before they are yielded (read_manifest pushes batches to a callback): bounded by the
    lambda engine's max_rows, a fifth of it held out by default."""
    import pyarrow as pa

    from mlvault.training.data import HELDOUT, read_manifest, row_assigner, split_key

    assign = row_assigner(split_key(contract), seed=seed, heldout_fraction=heldout_fraction)
    found: list[Any] = []

    def keep(entry: Any, batch: Any) -> None:
        found.append(batch.filter(pa.array(assign(entry, batch) == HELDOUT)))

    read_manifest(s3, manifest, contract, keep)  # the lambda engine's data is bounded by its max_rows
    yield from found

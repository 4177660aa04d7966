"""The fuzz loop: seed models -> mutated cases -> every verb of the registry (with plausible options) against
hostile save targets -> the oracle's verdict, counted by outcome class.

Oracle: exit 0 with a valid output (graphsurgeon reloads it; onnx's checker and onnxruntime accept it whenever
they accepted the input; --verify for meaning-preserving verbs), or exit 1 with one ``graphsurgeon: error:``
line and nothing written; report verbs may exit 1 with their report. Always: the input untouched, no temp file
left, nothing outside the case's folders, an answer within the timeout.

Exemptions, both because onnxruntime's CPU provider lacks kernels, not because the output is wrong:
`to-fp16 --bf16` results need only pass onnx's checker, not load in onnxruntime (no bfloat16 kernels for most
ops; a correct bf16 model is meant for GPU providers); a convert-opset or add-postprocess result that onnx's full
checker passes but onnxruntime cannot load for want of a kernel (a new op version, an op on a type it has none
for) is counted as "no-kernel". The
checker, reload and every other rule still apply to them. A freeze-input result onnxruntime refuses while
the original cannot run on the frozen values either counts as "invalid-value": the same failure, found at load.
An edit that changes meaning by request (remove-node, set-attr, ...; not a meaning-preserving verb) on an input
onnx's full checker refuses (declared shapes that contradict the graph, which onnxruntime merges leniently)
counts as "edit-on-invalid-input" when onnxruntime refuses the result: its checks rest on those declarations.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import ModelProto

from tests.fuzz.args import SAVE_TARGETS, Skip, verb_argv
from tests.fuzz.mutate import DIRECTORY, FIFO, Case, Symlink, mutate
from tests.fuzz.runner import Result, Worker

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "corpus"
ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
MAX_SEED_BYTES = 2 << 20
BAD = {
    "hang",
    "internal-error",
    "unclear-error",
    "long-usage-error",
    "wrote-on-failure",
    "input-changed",
    "temp-left",
    "wrote-outside",
    "invalid-output",
    "checker-regression",
    "onnxruntime-regression",
    "verify-failed",
}


def ort_load_exempt(verb_name: str, argv: list[str]) -> bool:
    """Whether onnxruntime's CPU provider is not expected to load this run's output (see the module docstring)."""
    return verb_name == "to-fp16" and "--bf16" in argv


class Oracle:
    """onnx's checker and onnxruntime, asked in a child process (tests/fuzz/oracle.py): a model that kills
    onnxruntime ends that process, not the run (the answer then says it crashed)."""

    def __init__(self) -> None:
        self.worker = Worker(recycle=400, module="tests.fuzz.oracle")

    def ask(self, question: str, path: Path, *extra: str) -> str | None:
        """The problem (or "yes"/"fails" for `kernel`/`frozen`), None for none."""
        result = self.worker.run([question, str(path), *extra], path.parent, timeout=120)
        if result.code is None:
            return "no answer within the timeout"
        if result.stderr == "the worker died":
            return f"the {'checker' if question in ('checker', 'full') else 'onnxruntime'} process died on it"
        return result.stdout or None

    def close(self) -> None:
        self.worker.close()


def frozen_values_fail(verb_name: str, argv: list[str], base: Baseline) -> bool:
    """freeze-input with values the original itself cannot run on (all-ones for a Range's size): onnxruntime
    refusing the frozen model at load (its constant folding runs them) is the same failure, found earlier."""
    if verb_name != "freeze-input" or "--input" not in argv:
        return False
    assignments = []
    for spelling in argv[argv.index("--input") + 1 :]:
        if spelling.startswith("-"):
            break
        assignments.append(spelling)
    return base.oracle.ask("frozen", base.path(), *assignments) == "fails"


def lacks_kernel(verb_name: str, output: Path | None, oracle: Oracle) -> bool:
    """convert-opset to an op version onnxruntime's CPU provider has no kernel for (RoiAlign-22 in 1.32), or
    add-postprocess making the op asked for on a type its schema allows but the CPU provider has no kernel for
    (ArgMax on int16): a valid model (onnx's full checker passes it) this runtime cannot run, not a wrong one."""
    if verb_name not in ("convert-opset", "add-postprocess") or output is None or not output.is_file():
        return False
    return oracle.ask("kernel", output) == "yes"


@dataclass
class Finding:
    verdict: str
    seed: str
    labels: list[str]
    argv: list[str]
    detail: str


@dataclass
class Stats:
    runs: int = 0
    models: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    verbs: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k in BAD)


# -- seeds -----------------------------------------------------------------------------------------------------
def seed_models(conformance: bool = True) -> list[tuple[str, ModelProto]]:
    """Corpus models, the onnx wheel's model files and (optionally) onnx's node conformance models, weights in."""
    from onnx.external_data_helper import load_external_data_for_model

    seeds = []
    for root in (CORPUS, ONNX_DATA):
        for path in sorted(root.rglob("*.onnx")):
            if path.stat().st_size > MAX_SEED_BYTES:
                continue
            try:
                model = onnx.load(str(path), load_external_data=False)
                data_dir = (
                    path.parent / "data"
                    if path.name == "ext_weights.onnx" and path.parent.name == "polygraphy"
                    else path.parent
                )
                load_external_data_for_model(model, str(data_dir))
            except Exception:  # noqa: BLE001 - a seed onnx cannot read is no seed
                continue
            seeds.append((str(path.relative_to(root)), model))
    if conformance:
        from onnx.backend.test.case.node import collect_testcases

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cases = collect_testcases(None)
        seeds += [(f"node/{c.name}", c.model) for c in cases if c.model is not None]
    return seeds


# -- files -----------------------------------------------------------------------------------------------------
def _materialize(folder: Path, case: Case) -> None:
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(case.serialized())
    for name, spec in case.files.items():
        path = folder / name
        if isinstance(spec, bytes):
            path.write_bytes(spec)
        elif spec == FIFO:
            os.mkfifo(path)
        elif spec == DIRECTORY:
            path.mkdir()
        elif isinstance(spec, Symlink):
            os.symlink(spec.target, path)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root: kind and content hash (FIFOs are never opened)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            elif path.is_file():
                found[rel] = hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()
            else:
                found[rel] = "special"
    return found


# -- oracle ----------------------------------------------------------------------------------------------------
class Baseline:
    """What onnx's checker and onnxruntime say about the input: asked once per case, only after a verb
    succeeded on it (so graphsurgeon has already refused FIFOs and hostile data files, which could block them)."""

    def __init__(self, case: Case, folder: Path, oracle: Oracle):
        self.case, self.folder, self.oracle = case, folder, oracle
        self._answers: dict[str, str | None] = {}

    def path(self) -> Path:
        if not self.folder.exists():
            _materialize(self.folder, self.case)
        return self.folder / "model.onnx"

    def _ask(self, what: str) -> str | None:
        if what not in self._answers:
            self._answers[what] = self.oracle.ask(what, self.path())
        return self._answers[what]

    def full(self) -> str | None:
        """What onnx's full checker (strict type and shape inference) says about the input."""
        return self._ask("full")

    def checker(self) -> str | None:
        return self._ask("checker")

    def ort(self) -> str | None:
        return self._ask("ort")


def judge(
    result: Result,
    verb,
    before: dict,
    after: dict,
    output: Path | None,
    in_place: bool,
    base: Baseline,
    argv: list[str] | None = None,
) -> tuple[str, str]:
    """(outcome class, detail) for one run."""
    temps = [p for p in after if p.endswith(".tmp") or "/.tmp" in p]
    if result.code is None:
        return "hang", "no answer within the timeout"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if temps:
        return "temp-left", ", ".join(temps)
    if any(not (p.startswith("in") or p.startswith("out")) for p in after):
        return "wrote-outside", ", ".join(p for p in after if not p.startswith(("in", "out")))
    changed_input = {p for p in set(before) | set(after) if p.startswith("in") and before.get(p) != after.get(p)}
    if result.code == 0 and in_place:
        changed_input = {
            p for p in changed_input if p != "in/model.onnx" and not (p.endswith(".data") and p not in before)
        }
    if changed_input:
        return "input-changed", ", ".join(sorted(changed_input))
    if result.code in (3, 98, 99) or (result.code or 0) >= 100:
        return "internal-error", (lines[-1] if lines else f"exit {result.code}")[:300]
    if result.code == 2:
        if len(lines) <= 2:
            return "usage-error", lines[-1][:200] if lines else ""
        return "long-usage-error", "\n".join(lines[:4])
    if result.code == 1:
        if "verify failed" in result.stderr:
            if lacks_kernel(verb.name, output, base.oracle):
                return "no-kernel", ""
            return "verify-failed", lines[-1][:300]
        if not verb.writes and not lines and result.stdout.strip():
            return "report-nonzero", ""
        if len(lines) != 1 or not lines[0].startswith("graphsurgeon: error: "):
            return "unclear-error", "\n".join(lines[:5])[:400]
        if verb.writes and before != after:
            return "wrote-on-failure", ", ".join(sorted(p for p in set(before) ^ set(after)))
        return "refused", lines[0][:200]
    if result.code != 0:
        return "internal-error", f"exit {result.code}"
    if not verb.writes:
        return "report", ""
    if lines:
        return "unclear-error", "exit 0 with stderr: " + lines[0][:200]
    if output is None or not output.is_file():
        return "invalid-output", f"exit 0 but no output file at {output}"
    import graphsurgeon as gs

    try:
        gs.load(output)
    except Exception as e:  # noqa: BLE001
        return "invalid-output", f"graphsurgeon cannot reload its output: {e}"[:300]
    if base.checker() is None:
        problem = base.oracle.ask("checker", output)
        if problem is not None:
            return "checker-regression", problem
    if not ort_load_exempt(verb.name, argv or []) and base.ort() is None:
        problem = base.oracle.ask("ort", output)
        if problem is not None and lacks_kernel(verb.name, output, base.oracle):
            return "no-kernel", ""
        if problem is not None and frozen_values_fail(verb.name, argv or [], base):
            return "invalid-value", ""
        if problem is not None and not verb.preserves_meaning and base.full() is not None:
            return "edit-on-invalid-input", ""
        if problem is not None:
            return "onnxruntime-regression", problem
    return "ok", ""


# -- the loop --------------------------------------------------------------------------------------------------
def fuzz(
    seed: int,
    cases: int,
    *,
    verbs_per_case: int = 6,
    timeout: float = 60.0,
    conformance: bool = True,
    seeds: list[tuple[str, ModelProto]] | None = None,
    skip_verbs: frozenset[str] = frozenset(),
    on_finding=None,
) -> Stats:
    """Run `cases` mutated models through `verbs_per_case` verbs each (every verb in turn over the run)."""
    from graphsurgeon.verbs import registry

    rng = random.Random(seed)
    seeds = seeds if seeds is not None else seed_models(conformance)
    verbs = [v for v in registry().values() if v.name not in skip_verbs]
    stats = Stats()
    worker = Worker()
    oracle = Oracle()
    turn = 0
    try:
        with tempfile.TemporaryDirectory(prefix="graphsurgeon-fuzz-") as scratch:
            for index in range(cases):
                seed_name, seed_model = rng.choice(seeds)
                case = mutate(seed_model, rng, rng.choice([0, 1, 1, 1, 2, 2, 3]))
                stats.models += 1
                base = Baseline(case, Path(scratch) / f"base-{index}", oracle)
                for _ in range(verbs_per_case):
                    verb = verbs[turn % len(verbs)]
                    turn += 1
                    root = Path(scratch) / f"c{index}-{turn}"
                    _materialize(root / "in", case)
                    (root / "out").mkdir()
                    (root / "in" / "other.onnx").write_bytes(seed_model.SerializeToString())
                    target = rng.choice(SAVE_TARGETS) if verb.writes else "plain"
                    planned = verb_argv(verb, case.model, rng, root, target)
                    if isinstance(planned, Skip):
                        stats.skipped[f"{verb.name}: {planned.reason}"] += 1
                        shutil.rmtree(root, ignore_errors=True)
                        continue
                    argv, output, in_place = planned
                    before = snapshot(root)
                    result = worker.run(argv, root, timeout)
                    after = snapshot(root)
                    verdict, detail = judge(result, verb, before, after, output, in_place, base, argv)
                    stats.runs += 1
                    stats.verbs[verb.name] += 1
                    stats.outcomes[verdict] += 1
                    if verdict in BAD:
                        finding = Finding(verdict, seed_name, case.labels, argv, detail)
                        stats.findings.append(finding)
                        if on_finding is not None:
                            on_finding(finding, case)
                    _cleanup(root)
                _cleanup(Path(scratch) / f"base-{index}")
    finally:
        worker.close()
        oracle.close()
    return stats


def _cleanup(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            os.chmod(Path(dirpath) / name, 0o755)
    shutil.rmtree(root, ignore_errors=True)

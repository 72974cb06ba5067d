"""Plan the benchmark's cells, run the ones not finished yet, record each one as it finishes.

The work is split into *training units* (one trained model: a run folder under ``DIR/runs/``) and
*cells* (one number row: a unit's model tested at one level). In the ``per-level`` regime each
unit has one cell; in ``mixed`` one unit (levels drawn per training sample) is tested at every
level. FineTec's completion module (stage 1) is one more unit per dataset, trained before the
FineTec methods; it trains on its own random masks (drop ratio 0.25-0.85, five patterns), so one
stage-1 model per dataset serves every level and both regimes.

The runner does not train or evaluate by itself: it calls a :class:`Backend`
(:class:`finetec.benchmark.engine_backend.EngineBackend` wires the engine's ``train`` and
``evaluate``), so that the bookkeeping is tested with a fake.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, TextIO

from finetec.benchmark.spec import (
    COMPLETION_FILLERS, COMPLETION_MODEL, LEVEL_ORDER, Budget, DatasetEntry, Method, method_levels,
)
from finetec.benchmark.store import ResultsStore, commit_of, upgrade_completion
from finetec.errors import FinetecError
from finetec.fileio import write_text_atomic

DONE_MARKER = "benchmark_done.json"


@dataclass(frozen=True)
class TrainUnit:
    """One model to train: a method (None = the stage-1 completion module) on a dataset.

    level: the training (and test) level in the per-level regime; None for mixed / stage 1.
    """

    dataset: DatasetEntry
    method: Method | None
    regime: str
    level: str | None
    budget: Budget
    seed: int
    out_dir: Path

    @property
    def name(self) -> str:
        what = "completion" if self.method is None else self.method.name
        if self.method is None:
            tag = "stage1"
        else:
            tag = self.level if self.regime == "per-level" else "mixed"
        return f"{self.dataset.key}__{what}__{tag}__{self.budget.name}__s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return self.out_dir / "runs" / self.name

    @property
    def is_completion(self) -> bool:
        return self.method is None


@dataclass(frozen=True)
class Cell:
    unit: TrainUnit
    level: str

    @property
    def key(self) -> dict[str, Any]:
        assert self.unit.method is not None
        return {"dataset": self.unit.dataset.key, "method": self.unit.method.name,
                "regime": self.unit.regime, "level": self.level,
                "budget": self.unit.budget.name, "seed": self.unit.seed}

    @property
    def label(self) -> str:
        k = self.key
        return f"{k['dataset']} / {k['method']} / {k['regime']} / {k['level']}"


class Backend(Protocol):
    """What the runner needs from the training/evaluation engine."""

    def prepare(self, entry: DatasetEntry, out_dir: Path) -> dict[str, Any]:
        """Load (and cache) the dataset; return facts about it (checked before any training)."""

    def config(self, unit: TrainUnit, completion_dir: Path | None) -> dict[str, Any]:
        """The engine configuration of a unit (written to its run folder)."""

    def train(self, unit: TrainUnit, config: dict[str, Any], resume: bool) -> None:
        """Train the unit into ``unit.run_dir`` (resuming from a partial run when asked)."""

    def evaluate(self, unit: TrainUnit, level: str) -> dict[str, Any]:
        """Test the unit's selected checkpoint at ``level``: top1, top5, mean_class, num_clips."""

    def completion_rows(self, entry: DatasetEntry, budget: Budget, seed: int, levels: list[str],
                        completion_dir: Path | None) -> list[dict[str, Any]]:
        """MPJPE, N-MPJPE, MPJVE of every filler (and the completion module) at each level."""

    def machine(self) -> str:
        """One line describing the machine (processor, threads, device, torch version)."""


def plan_cells(entries: list[DatasetEntry], methods: list[Method], levels: list[str], regime: str,
               budget: Budget, seed: int, out_dir: Path, explicit_levels: bool) -> list[Cell]:
    """Every cell of the benchmark, in run order (dataset, then method, then level)."""
    cells: list[Cell] = []
    for entry in entries:
        b = budget
        for method in methods:
            lv = method_levels(method, levels, regime, explicit_levels)
            if regime == "mixed":
                unit = TrainUnit(entry, method, "mixed", None, b, seed, out_dir)
                cells += [Cell(unit, level) for level in lv]
            else:
                cells += [Cell(TrainUnit(entry, method, "per-level", level, b, seed, out_dir), level)
                          for level in lv]
    return cells


def completion_unit(entry: DatasetEntry, budget: Budget, seed: int, out_dir: Path) -> TrainUnit:
    return TrainUnit(entry, None, "stage1", None, budget, seed, out_dir)


class Progress:
    """Progress lines on stderr: the running cell, cells done / total, elapsed and time left.

    The estimate is the mean time of the cells computed in this sitting times the cells left.
    """

    def __init__(self, total: int, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()
        self.computed = 0

    def _eta(self) -> str:
        left = self.total - self.done
        if left <= 0:
            return "0s"
        if self.computed == 0:
            return "unknown"
        per = (self.clock() - self.start) / self.computed
        return fmt_seconds(per * left)

    def line(self, text: str) -> None:
        el = fmt_seconds(self.clock() - self.start)
        print(f"[benchmark {self.done}/{self.total} cells done | elapsed {el} | left ~{self._eta()}] {text}",
              file=self.stream, flush=True)

    def skipped(self, n: int = 1) -> None:
        self.done += n

    def finished(self, n: int = 1) -> None:
        self.done += n
        self.computed += n


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _train_unit(backend: Backend, unit: TrainUnit, completion_dir: Path | None,
                progress: Progress, what: str) -> float:
    """Train ``unit`` unless its run folder says it finished; return its training wall time (s).

    A unit killed mid-training leaves its engine checkpoint (``last/``) behind and is resumed; the
    wall time then counts every sitting (each adds its own seconds to ``benchmark_time.json``).
    """
    marker = unit.run_dir / DONE_MARKER
    if marker.exists():
        try:
            done = json.loads(marker.read_text())
            _same_clip_len(done, unit, f"run {unit.name}", marker)
            return float(done["train_seconds"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # a damaged marker: train again (resuming) and rewrite it
    config = backend.config(unit, completion_dir)
    unit.run_dir.mkdir(parents=True, exist_ok=True)
    _write_config_yaml(unit.run_dir / "config.yaml", config)
    resume = (unit.run_dir / "last").exists()
    previous = _previous_seconds(unit.run_dir) if resume else 0.0
    progress.line(f"{what}: {'resuming' if resume else 'training'} in {unit.run_dir}")
    t0 = time.perf_counter()
    try:
        backend.train(unit, config, resume=resume)
    finally:
        spent = previous + time.perf_counter() - t0
        write_text_atomic(unit.run_dir / "benchmark_time.json", json.dumps({"train_seconds": spent}))
    fit = _final_fit(unit.run_dir)
    write_text_atomic(marker, json.dumps({"train_seconds": spent, "config": config, **fit}, default=str))
    return spent


def _final_fit(run_dir: Path) -> dict[str, Any]:
    """The last epoch's training top-1 and the number of epochs, from the engine's metrics.jsonl."""
    try:
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return {}
    if not rows:
        return {}
    last = rows[-1]
    top1 = last.get("train_top1")
    return {"train_top1": None if top1 is None else float(top1), "epochs": len(rows)}


def _previous_seconds(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / "benchmark_time.json").read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _write_config_yaml(path: Path, config: dict[str, Any]) -> None:
    import yaml

    write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))


def run_benchmark(
    entries: list[DatasetEntry],
    methods: list[Method],
    levels: list[str],
    regime: str,
    budget: Budget,
    out_dir: str | Path,
    seed: int,
    backend: Backend,
    explicit_levels: bool = False,
    command: str = "finetec benchmark",
    completion_table: bool = True,
    stream: TextIO | None = None,
) -> ResultsStore:
    """Run every unfinished cell and record it; return the results store.

    Order per dataset: stage-1 completion (when a FineTec method needs it), the completion table,
    then the cells. Each finished cell is written to ``DIR/results.json`` at once.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(out / "results.json")
    facts = {e.key: backend.prepare(e, out) for e in entries}  # bad data fails before any training
    code = backend.code() if hasattr(backend, "code") else None
    ctx = _Sitting(backend, store, seed, command, backend.machine(), code)
    store.update_meta(lambda meta: _record_meta(meta, entries, facts, methods, command))

    cells = plan_cells(entries, methods, levels, regime, budget, seed, out, explicit_levels)
    progress = Progress(len(cells), stream)
    _check_clip_lengths(cells, store)
    todo = [c for c in cells if not store.has_cell(**c.key)]
    progress.skipped(len(cells) - len(todo))
    if len(todo) < len(cells):
        progress.line(f"{len(cells) - len(todo)} cells already in {store.path}, skipped")

    for entry in entries:
        b = budget
        mine = [c for c in todo if c.unit.dataset.key == entry.key]
        completion_dir = _stage1_and_table(ctx, entry, b, methods, mine, completion_table, out, progress)
        for unit, unit_cells in _group_by_unit(mine):
            _run_unit_cells(ctx, unit, unit_cells, completion_dir, progress)
    progress.line(f"finished; results in {store.path}")
    return store


@dataclass(frozen=True)
class _Sitting:
    """What every record of one benchmark sitting shares."""

    backend: Backend
    store: ResultsStore
    seed: int
    command: str
    machine: str
    code: str | None


def _record_meta(meta: dict[str, Any], entries: list[DatasetEntry], facts: dict[str, dict[str, Any]],
                 methods: list[Method], command: str) -> None:
    """Dataset facts, method titles and the command line, in the results file's ``meta``."""
    meta.setdefault("datasets", {})
    for e in entries:
        meta["datasets"][e.key] = {"title": e.title, "spec": e.spec, **facts[e.key]}
    meta.setdefault("methods", {}).update({m.name: m.title for m in methods})
    meta.setdefault("commands", [])
    if command not in meta["commands"]:
        meta["commands"].append(command)


def _stage1_and_table(ctx: _Sitting, entry: DatasetEntry, b: Budget, methods: list[Method], mine: list[Cell],
                      completion_table: bool, out: Path, progress: Progress) -> Path | None:
    """Train the dataset's stage-1 completion module when a FineTec method (or the unfinished
    completion table) needs it, and record the completion table; return the stage-1 run folder."""
    store, seed = ctx.store, ctx.seed
    comp_levels = [lv for lv in LEVEL_ORDER if lv != "clean"]
    uses_model = any(m.needs_completion for m in methods)
    table_done = not completion_table or all(
        store.has_completion(dataset=entry.key, filler=f, level=lv, budget=b.name, seed=seed)
        for f in _table_fillers(uses_model) for lv in comp_levels)
    completion_dir: Path | None = None
    stage1_seconds = None
    if uses_model and (not table_done or any(c.unit.method.needs_completion for c in mine)):
        cu = completion_unit(entry, b, seed, out)
        stage1_seconds = _train_unit(ctx.backend, cu, None, progress, f"{entry.key}: stage-1 completion module")
        completion_dir = cu.run_dir
    if not table_done:
        progress.line(f"{entry.key}: completion table (fillers{' + completion module' if completion_dir else ''})")
        rows = [upgrade_completion(r)
                for r in ctx.backend.completion_rows(entry, b, seed, comp_levels, completion_dir)]
        for r in rows:
            r.update({"budget": b.name, "clip_len": b.clip_len, "seed": seed, "machine": ctx.machine,
                      "command": ctx.command, "code": ctx.code, "commit": commit_of(ctx.code)})
            if r["filler"] == COMPLETION_MODEL and completion_dir is not None:
                r.update({"wall_s": round(stage1_seconds or 0.0, 1),
                          "config_file": str(completion_dir / "config.yaml")})
        store.add_completion(rows)
    return completion_dir


def _run_unit_cells(ctx: _Sitting, unit: TrainUnit, unit_cells: list[Cell], completion_dir: Path | None,
                    progress: Progress) -> None:
    """Train one unit (unless finished) and test it at each of its cells' levels, recording each cell."""
    label = unit_cells[0].label if len(unit_cells) == 1 else \
        f"{unit.dataset.key} / {unit.method.name} / mixed / levels {','.join(c.level for c in unit_cells)}"
    seconds = _train_unit(ctx.backend, unit, completion_dir, progress, label)
    done = json.loads((unit.run_dir / DONE_MARKER).read_text())
    if "train_top1" not in done:  # a marker written before the fit was recorded
        done.update(_final_fit(unit.run_dir))
    for cell in unit_cells:
        progress.line(f"{cell.label}: testing")
        res = ctx.backend.evaluate(unit, cell.level)
        row = {**cell.key, "top1": res["top1"], "mean_class": res["mean_class"],
               "n_test": res["num_clips"], "clip_len": unit.budget.clip_len, "wall_s": round(seconds, 1),
               "commit": commit_of(ctx.code), "machine": ctx.machine, "top5": res.get("top5"),
               "pattern": res.get("pattern", "random"), "pred": res.get("pred"), "ids_sha1": res.get("ids_sha1"),
               "train_top1": done.get("train_top1"), "epochs": done.get("epochs"),
               "config": done["config"], "config_file": str(unit.run_dir / "config.yaml"),
               "run_dir": str(unit.run_dir), "command": ctx.command, "code": ctx.code}
        ctx.store.add_cell(row)
        progress.finished()
        fit = "" if row["train_top1"] is None else f", final training top-1 {100 * row['train_top1']:.1f} %"
        progress.line(f"{cell.label}: top-1 {100 * res['top1']:.1f} %, "
                      f"mean-class {100 * res['mean_class']:.1f} %{fit}")


def clip_len_of(row: dict[str, Any]) -> int | None:
    """The clip length a recorded cell (or run marker) was trained at: its ``clip_len`` or, in
    records written before it was stored, its config's."""
    if row.get("clip_len") is not None:
        return int(row["clip_len"])
    cfg = row.get("config")
    t = cfg.get("pipeline", {}).get("clip_len") if isinstance(cfg, dict) else None
    return None if t is None else int(t)


def _check_clip_lengths(cells: list[Cell], store: ResultsStore) -> None:
    """Refuse to mix clip lengths: a recorded cell (or a finished run folder) trained at another T
    than the budget now gives (a budget changed between sittings) is not skipped nor resumed silently."""
    for c in cells:
        row = store.find_cell(**c.key)
        if row is not None:
            _same_clip_len(row, c.unit, f"cell {c.label}", store.path)


def _same_clip_len(row: dict[str, Any], unit: TrainUnit, what: str, where: Path) -> None:
    t = clip_len_of(row)
    if t is not None and t != unit.budget.clip_len:
        raise FinetecError(f"{what} was trained at T={t}, the {unit.budget.name} budget now gives "
                           f"T={unit.budget.clip_len}: write to a new --out folder", where)


def _table_fillers(with_model: bool) -> list[str]:
    return list(COMPLETION_FILLERS) + ([COMPLETION_MODEL] if with_model else [])


def _group_by_unit(cells: list[Cell]) -> list[tuple[TrainUnit, list[Cell]]]:
    groups: dict[str, tuple[TrainUnit, list[Cell]]] = {}
    for c in cells:
        groups.setdefault(c.unit.name, (c.unit, []))[1].append(c)
    return list(groups.values())

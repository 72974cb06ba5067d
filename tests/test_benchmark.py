"""The benchmark: cell planning, resume bookkeeping, tables, argument errors, a tiny real run."""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finetec.benchmark import report
from finetec.benchmark.runner import DONE_MARKER, Progress, plan_cells, run_benchmark
from finetec.benchmark.spec import BUDGETS, METHODS, dataset_key, make_entries, method_levels
from finetec.benchmark.store import ResultsStore
from finetec.cli import main
from finetec.errors import FinetecError

SCORES = {"stgcnpp_zero": 0.50, "stgcnpp_linear": 0.60, "ctrgcn_linear": 0.58, "finetec": 0.65,
          "finetec_no_completion": 0.61, "finetec_no_decomposition": 0.64, "finetec_no_physics": 0.66}
DROP = {"clean": 0.0, "minor": 0.02, "moderate": 0.05, "severe": 0.10}
N_TEST = 100


class FakeBackend:
    """Records calls; 'trains' by creating the engine's checkpoint folders; can crash on demand."""

    def __init__(self, crash_eval: tuple[str, str] | None = None, crash_train: str | None = None):
        self.trained: list[tuple[str, bool]] = []
        self.evaluated: list[tuple[str, str]] = []
        self.tables: list[str] = []
        self.configs: list[dict[str, Any]] = []
        self.crash_eval = crash_eval
        self.crash_train = crash_train

    def prepare(self, entry, out_dir):
        return {"num_train": 10, "num_test": N_TEST, "num_classes": 14, "layout": "coco17", "dims": 2,
                "test_labels": [i % 14 for i in range(N_TEST)], "test_ids_sha1": "ids"}

    def config(self, unit, completion_dir):
        cfg = {"name": unit.name, "seed": unit.seed,
               "model": {"name": "completion" if unit.method is None else unit.method.model},
               "completion_checkpoint": None if completion_dir is None else str(completion_dir / "best")}
        self.configs.append(cfg)
        return cfg

    def train(self, unit, config, resume):
        (unit.run_dir / "last").mkdir(parents=True, exist_ok=True)
        self.trained.append((unit.name, resume))
        if self.crash_train and self.crash_train in unit.name:
            raise RuntimeError("killed mid-training")
        (unit.run_dir / "best").mkdir(exist_ok=True)

    def evaluate(self, unit, level):
        if self.crash_eval == (unit.method.name, level):
            raise RuntimeError("killed while testing")
        self.evaluated.append((unit.method.name, level))
        k = round((SCORES[unit.method.name] - DROP[level]) * N_TEST)   # the first k clips right
        pred = [i % 14 if i < k else (i + 1) % 14 for i in range(N_TEST)]
        return {"top1": k / N_TEST, "mean_class": k / N_TEST - 0.01, "top5": 0.99, "num_clips": N_TEST,
                "pred": pred, "ids_sha1": "ids"}

    def completion_rows(self, entry, budget, seed, levels, completion_dir):
        self.tables.append(entry.key)
        fillers = ["zero", "copy_lr", "copy_rl", "linear", "cubic"] + (["completion"] if completion_dir else [])
        return [{"dataset": entry.key, "filler": f, "level": lv, "mpjpe": 0.1 * (i + 1) + DROP[lv],
                 "n_mpjpe": 0.05 * (i + 1), "mpjve": 0.02 * (i + 1)}
                for i, f in enumerate(fillers) for lv in levels]

    def machine(self):
        return "test machine"


def _run(tmp_path: Path, backend: FakeBackend, methods=("stgcnpp_linear", "finetec"),
         levels=("clean", "severe"), regime="per-level", explicit=True):
    entries = make_entries(["synthetic:coco17"])
    return run_benchmark(entries, [METHODS[m] for m in methods], list(levels), regime, BUDGETS["quick"],
                         tmp_path, 0, backend, explicit_levels=explicit, command="finetec benchmark (test)",
                         stream=io.StringIO())


def test_plan_per_level_mixed_and_ablations(tmp_path):
    entries = make_entries(["synthetic:coco17"])
    methods = [METHODS[m] for m in ("stgcnpp_linear", "finetec", "finetec_no_physics")]
    levels = ["clean", "minor", "moderate", "severe"]
    per = plan_cells(entries, methods, levels, "per-level", BUDGETS["quick"], 0, tmp_path, explicit_levels=False)
    # 4 + 4 levels, the ablation only at severe; one training unit per cell
    assert [(c.unit.method.name, c.level) for c in per][-1] == ("finetec_no_physics", "severe")
    assert len(per) == 9 and len({c.unit.name for c in per}) == 9
    mixed = plan_cells(entries, methods, levels, "mixed", BUDGETS["quick"], 0, tmp_path, explicit_levels=False)
    assert len(mixed) == 12 and len({c.unit.name for c in mixed}) == 3
    assert method_levels(METHODS["finetec_no_physics"], levels, "per-level", explicit_levels=True) == levels


def test_finished_cells_are_skipped(tmp_path):
    b1 = FakeBackend()
    store = _run(tmp_path, b1)
    assert len(store.cells) == 4
    assert [t[0].split("__")[1] for t in b1.trained] == ["completion", "stgcnpp_linear", "stgcnpp_linear",
                                                          "finetec", "finetec"]
    on_disk = json.loads((tmp_path / "results.json").read_text())
    row = next(c for c in on_disk["cells"] if c["method"] == "finetec" and c["level"] == "severe")
    assert row["top1"] == pytest.approx(0.55) and row["seed"] == 0 and row["budget"] == "quick"
    assert row["machine"] == "test machine" and row["config"]["completion_checkpoint"].endswith("stage1__quick__s0/best")
    assert len(on_disk["completion"]) == 6 * 3  # five fillers + the completion module, three levels
    b2 = FakeBackend()
    _run(tmp_path, b2)
    assert b2.trained == [] and b2.evaluated == [] and b2.tables == []


def test_crashed_cell_is_redone_and_training_resumes(tmp_path):
    with pytest.raises(RuntimeError):
        _run(tmp_path, FakeBackend(crash_train="finetec__severe"))
    done = {(c["method"], c["level"]) for c in ResultsStore(tmp_path / "results.json").cells}
    assert done == {("stgcnpp_linear", "clean"), ("stgcnpp_linear", "severe"), ("finetec", "clean")}
    b = FakeBackend()
    store = _run(tmp_path, b)
    # only the crashed cell ran again, resuming its partial training run
    assert b.trained == [(next(n for n, _ in b.trained), True)]
    assert "finetec__severe" in b.trained[0][0] and b.evaluated == [("finetec", "severe")]
    assert len(store.cells) == 4


def test_crash_while_testing_keeps_trained_model(tmp_path):
    with pytest.raises(RuntimeError):
        _run(tmp_path, FakeBackend(crash_eval=("finetec", "clean")))
    b = FakeBackend()
    _run(tmp_path, b)
    # finetec@clean had finished training (marker written): only its test is redone; finetec@severe
    # never started
    assert [(n.split("__")[1:3], r) for n, r in b.trained] == [(["finetec", "severe"], False)]
    assert b.evaluated == [("finetec", "clean"), ("finetec", "severe")]
    marker = next((tmp_path / "runs").glob("*finetec__clean*")) / DONE_MARKER
    assert json.loads(marker.read_text())["train_seconds"] >= 0


def test_mixed_regime_trains_once_tests_every_level(tmp_path):
    b = FakeBackend()
    store = _run(tmp_path, b, methods=("stgcnpp_zero",), levels=("clean", "minor", "moderate", "severe"),
                 regime="mixed")
    assert [n.split("__")[1:3] for n, _ in b.trained] == [["stgcnpp_zero", "mixed"]]
    assert [c["level"] for c in store.cells] == ["clean", "minor", "moderate", "severe"]
    assert {c["regime"] for c in store.cells} == {"mixed"}
    # no FineTec method: no stage-1 module; the completion table has the gap fillers only
    assert b.tables == ["synthetic-coco17"]
    assert {r["filler"] for r in store.completion} == {"zero", "copy_lr", "copy_rl", "linear", "cubic"}


def test_report_tables_from_results(tmp_path):
    store = _run(tmp_path, FakeBackend(), methods=("stgcnpp_zero", "stgcnpp_linear", "finetec",
                                                   "finetec_no_completion", "finetec_no_physics"),
                 explicit=False)
    results = json.loads((tmp_path / "results.json").read_text())
    text = report.render_markdown(results)
    # summary first: ST-GCN++ linear at severe: 0.60 - 0.10 = 50.0 top-1, one seed
    assert text.index("## Summary") < text.index("## Per-seed detail") < text.index("## Provenance")
    assert "| ST-GCN++ + linear interpolation (`stgcnpp_linear`) | 60.0 (1) | 50.0 (1) |" in text
    # FineTec is right on the first 55 clips, ST-GCN++ linear on the first 50: +5.0 points; one seed
    assert "| **FineTec − best baseline** (points, 95 % CI) | +5.0 [" in text and "1 seed vs `stgcnpp_linear`" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("- At **severe**"))
    assert "one seed cannot separate the methods from training noise" in line and "NOT met" in line
    assert "FineTec at severe vs its clean accuracy: -10.0 points (target: within 3 points: NOT met)." in text
    abl = next(ln for ln in text.splitlines() if "`finetec_no_completion` at severe" in ln)
    assert "+4.0 [" in abl and "does NOT show that the module helps" in abl
    # per-seed detail keeps top-1 / mean-class
    assert "| ST-GCN++ + linear interpolation (`stgcnpp_linear`) | 60.0 / 59.0 | 50.0 / 49.0 | - |" in text
    # completion table: zero filling has the lowest MPJPE in the fake rows, in bold
    assert "| zero filling (`zero`) | **0.120** / 0.050 / 0.020 |" in text
    assert "## Provenance" in text and "finetec benchmark (test)" in text
    assert "Completion module: config `" in text and "completion__stage1__quick__s0/config.yaml`" in text
    assert len(store.cells) == 2 * 3 + 2
    # every cell carries its per-clip predictions and the schema's fields
    for c in store.cells:
        assert len(c["pred"]) == N_TEST and c["n_test"] == N_TEST and "wall_s" in c and "commit" in c


def _cell(method, seed, top1, level="severe", pred=None, **extra):
    return {"dataset": "d", "method": method, "regime": "mixed", "level": level, "top1": top1,
            "mean_class": top1, "n_test": 100, "wall_s": 1.0, "seed": seed, "budget": "standard", "commit": None,
            "machine": "m", "pred": pred, "ids_sha1": "ids" if pred is not None else None, **extra}


def test_report_says_when_finetec_loses():
    cells = [_cell("stgcnpp_linear", 0, 0.7), _cell("finetec", 0, 0.695)]
    text = report.render_markdown({"cells": cells, "completion": []})
    # one seed and no per-clip predictions: a difference without an interval
    assert "-0.5 (no interval) vs `stgcnpp_linear`" in text and "NOT met" in text


def test_paired_intervals_over_seeds_and_clips():
    """Three seeds, 100 clips: FineTec right on 10 more clips than the baseline in every seed is
    a real difference; the ablation differing on 2 clips either way is not distinguishable."""
    labels = list(range(10)) * 10
    right = lambda k: [lab if i < k else (lab + 1) % 10 for i, lab in enumerate(labels)]  # noqa: E731
    cells = []
    for seed in range(3):
        cells += [_cell("stgcnpp_linear", seed, 0.60, pred=right(60)), _cell("finetec", seed, 0.70, pred=right(70)),
                  _cell("finetec_no_physics", seed, 0.70, pred=right(68) if seed else right(72))]
    meta = {"datasets": {"d": {"test_labels": labels, "test_ids_sha1": "ids"}}}
    comp = report.comparisons(cells, meta)["severe"]
    name, d = comp["baseline"]
    assert name == "stgcnpp_linear" and d.method == "bootstrap" and d.n_seeds == 3 and d.n_clips == 100
    assert d.mean == pytest.approx(0.10) and 0 < d.lo < 0.10 < d.hi and d.real
    abl = comp["ablations"]["finetec_no_physics"]
    assert abl.lo < 0 < abl.hi and not abl.real and abl.verdict == "not distinguishable"
    text = report.render_markdown({"cells": cells, "completion": [], "meta": meta})
    assert "| ST-GCN++ + linear interpolation (`stgcnpp_linear`) | 60.0 ± 0.0 (3) |" in text
    assert "**real** vs `stgcnpp_linear`" in text and "bootstrap over 3 seeds and 100 test clips: real" in text
    # clips of another test set (different ids) are not paired clip by clip: t interval over seeds
    other = [dict(c, ids_sha1="other") if c["method"] == "finetec" else c for c in cells]
    assert report.comparisons(other, meta)["severe"]["baseline"][1].method == "t-seeds"


def test_best_baseline_needs_as_many_seeds_as_the_comparison():
    """A baseline with one lucky seed is not the reference of a three-seed comparison; once every
    baseline has one seed only, the best of them is."""
    cells = []
    for seed in range(3):
        cells += [_cell("stgcnpp_linear", seed, 0.60), _cell("finetec", seed, 0.70)]
    cells.append(_cell("ctrgcn_linear", 0, 0.90))
    by = report.by_method_level(cells)
    assert report.best_baseline(by, "severe") == "stgcnpp_linear"
    few = [c for c in cells if c["seed"] == 0]
    assert report.best_baseline(report.by_method_level(few), "severe") == "ctrgcn_linear"


def test_bootstrap_and_t_interval():
    from scipy import stats as sps

    from finetec.benchmark.stats import bootstrap_difference, t_interval

    rng = np.random.default_rng(0)
    noise = rng.choice([-1, 0, 0, 1], size=(5, 400)).astype(float)
    d = bootstrap_difference(noise)
    assert d.lo < d.mean < d.hi and d.n_seeds == 5
    shifted = bootstrap_difference(np.where(rng.random((5, 400)) < 0.2, 1.0, 0.0))
    assert shifted.lo > 0.1 and shifted.real
    one = bootstrap_difference(np.ones((1, 50)) * (np.arange(50) < 25))
    assert one.method == "bootstrap-clips" and one.excludes_zero and not one.real
    t = t_interval([0.02, 0.01, 0.03])
    half = sps.t.ppf(0.975, 2) * 0.01 / 3 ** 0.5
    assert t.lo == pytest.approx(0.02 - half) and t.hi == pytest.approx(0.02 + half) and t.method == "t-seeds"
    assert t_interval([0.05]).method == "none"


def test_two_seed_interval_is_widened_to_the_t_interval_over_seeds():
    """Two seeds that disagree (+10 and +2 points on 400 clips): the percentile bootstrap over the
    seeds alone would exclude 0, but two training runs cannot show that; the reported interval
    reaches the t interval over the two per-seed differences and the difference is not real."""
    from finetec.benchmark.stats import bootstrap_difference, t_interval

    diff = np.zeros((2, 400))
    diff[0, :40] = 1.0
    diff[1, :8] = 1.0
    d = bootstrap_difference(diff)
    t = t_interval(diff.mean(axis=1))
    assert d.mean == pytest.approx(0.06) and d.method == "bootstrap"
    assert d.lo == pytest.approx(t.lo) and d.hi == pytest.approx(t.hi) and d.lo < 0 and not d.real
    # many agreeing seeds: the bootstrap (which also draws the clips) is the wider one and is kept
    agree = np.zeros((5, 400))
    agree[:, :40] = 1.0
    wide = bootstrap_difference(agree)
    assert wide.lo < 0.1 < wide.hi and wide.real and t_interval(agree.mean(axis=1)).lo == pytest.approx(0.1)


def test_fit_warning_for_undertrained_models():
    cells = [_cell("stgcnpp_linear", 0, 0.4, train_top1=0.45, epochs=10), _cell("finetec", 0, 0.5, train_top1=0.9)]
    text = report.render_markdown({"cells": cells, "completion": []})
    assert "**Warning: `stgcnpp_linear` (seed 0) has not fit its training data**: final training top-1 45.0 %" in text
    assert "`finetec` (seed 0) has not fit" not in text


def test_store_rejects_damaged_file(tmp_path):
    p = tmp_path / "results.json"
    p.write_text("{not json")
    with pytest.raises(FinetecError, match="cannot read benchmark results"):
        ResultsStore(p)
    p.write_text(json.dumps({"cells": [{"dataset": "x"}]}))
    with pytest.raises(FinetecError, match="cell 0 lacks"):
        ResultsStore(p)


def test_progress_line_counts_and_estimates():
    t = [0.0]
    buf = io.StringIO()
    pr = Progress(4, buf, clock=lambda: t[0])
    pr.skipped()
    pr.line("a")
    t[0] = 30.0
    pr.finished()
    pr.line("b")
    lines = buf.getvalue().splitlines()
    assert "1/4 cells done" in lines[0] and "left ~unknown" in lines[0]
    assert "2/4 cells done | elapsed 30s | left ~1m00s" in lines[1]  # 30 s per computed cell, 2 left


def test_dataset_keys():
    assert dataset_key("synthetic:coco17") == "synthetic-coco17"
    assert dataset_key("../shared/data/nw_ucla") == "nw_ucla"
    assert dataset_key("x/penn_action/labels") == "penn_action"
    assert dataset_key("a/b/ucla.finetec.npz") == "ucla"


@pytest.mark.parametrize("argv, message", [
    (["--methods", "resnet"], "unknown method 'resnet'"),
    (["--levels", "extreme"], "unknown level 'extreme'"),
    (["--budget", "huge"], "unknown budget 'huge'"),
    (["--regime", "sometimes"], "unknown regime 'sometimes'"),
    (["--data", "/nonexistent/folder"], "/nonexistent/folder: no such file or folder"),
])
def test_argument_errors(tmp_path, capsys, argv, message):
    out = tmp_path / "bench"
    rc = main(["benchmark", "--out", str(out), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err
    assert err.startswith("finetec benchmark: error: ")
    assert not (out / "results.json").exists()


def test_unreadable_data_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "broken.finetec.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    rc = main(["benchmark", "--data", str(bad), "--out", str(tmp_path / "o"), "--budget", "quick"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "broken.finetec.npz" in err


def test_report_only_needs_results(tmp_path, capsys):
    rc = main(["benchmark", "--report-only", "--out", str(tmp_path)])
    assert rc == 2 and "run the benchmark first" in capsys.readouterr().err


def test_report_only_writes_docs(tmp_path, capsys):
    _run(tmp_path, FakeBackend())
    docs = tmp_path / "docs" / "results.md"
    rc = main(["benchmark", "--report-only", "--out", str(tmp_path), "--write-docs", str(docs),
               "--note", "Only the mixed regime was affordable."])
    assert rc == 0
    text = docs.read_text()
    assert "**Note.** Only the mixed regime was affordable." in text
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["notes"] == ["Only the mixed regime was affordable."]
    # plots beside the page, linked relative to it
    for png in ("benchmark_accuracy_per-level_quick.png", "benchmark_completion_quick.png"):
        assert (docs.parent / "img" / png).stat().st_size > 1000 and f"](img/{png})" in text
    assert (tmp_path / "accuracy_per-level_quick.png").exists()
    assert "| FineTec (`finetec`) | 65.0 (1) | 55.0 (1) |" in text
    printed = capsys.readouterr().out
    assert "| FineTec (`finetec`) | 65.0 (1) | 55.0 (1) |" in printed and "## Provenance" not in printed
    assert "one seed cannot separate" in printed


TINY = dataclasses.replace(
    BUDGETS["quick"], name="tiny", clip_len=8, epochs=1, batch_size=16,
    backbone={"base_channels": 8, "num_stages": 2, "inflate_stages": [], "down_stages": []},
    finetec={"physics_hidden": 8, "fusion_width": 4, "fusion_heads": 1},
    completion={"width": 16, "depth": 1, "merge_at": 1, "bank_size": 8}, completion_epochs=1)


@pytest.mark.slow
def test_end_to_end_tiny_synthetic(tmp_path):
    """The real engine on 42 synthetic clips: stage 1, the completion table, two methods, resume."""
    from finetec.benchmark.engine_backend import EngineBackend

    entries = make_entries(["synthetic:coco17?clips=42&frames=12&subjects=3"])
    methods = [METHODS["stgcnpp_linear"], METHODS["finetec"]]
    buf = io.StringIO()
    store = run_benchmark(entries, methods, ["severe"], "per-level", TINY, tmp_path, 0, EngineBackend("cpu"),
                          explicit_levels=True, command="test", stream=buf)
    assert [(c["method"], c["level"]) for c in store.cells] == [("stgcnpp_linear", "severe"), ("finetec", "severe")]
    test_clips = store.meta["datasets"][entries[0].key]["num_test"]
    for c in store.cells:
        assert 0.0 <= c["mean_class"] <= 1.0 and c["n_test"] == test_clips == len(c["pred"])
        assert c["ids_sha1"] == store.meta["datasets"][entries[0].key]["test_ids_sha1"]
        assert 0.0 <= c["train_top1"] <= 1.0 and c["epochs"] == 1
        saved = np.load(Path(c["run_dir"]) / "predictions_severe.npz")
        assert saved["scores"].argmax(1).tolist() == c["pred"] and len(saved["id"]) == test_clips
        # top-1 is a multiple of 1 / test clips: a real evaluation on the real test split
        assert abs(c["top1"] * test_clips - round(c["top1"] * test_clips)) < 1e-6
        assert Path(c["config_file"]).exists() and (Path(c["run_dir"]) / "best").is_dir()
    assert store.cells[1]["config"]["model"]["completion_checkpoint"].endswith("stage1__tiny__s0/best")
    rows = {(r["filler"], r["level"]): r for r in store.completion}
    assert set(rows) == {(f, lv) for f in ("zero", "copy_lr", "copy_rl", "linear", "cubic", "completion")
                         for lv in ("minor", "moderate", "severe")}
    # zero filling is far from the body; interpolation is much closer
    for lv in ("minor", "moderate", "severe"):
        assert rows[("linear", lv)]["mpjpe"] < rows[("zero", lv)]["mpjpe"]
    assert "2/2 cells done" in buf.getvalue()
    # a second run finds everything done
    buf2 = io.StringIO()
    run_benchmark(entries, methods, ["severe"], "per-level", TINY, tmp_path, 0, EngineBackend("cpu"),
                  explicit_levels=True, command="test", stream=buf2)
    assert "2 cells already in" in buf2.getvalue() and "training" not in buf2.getvalue()
    text = report.render_markdown(json.loads((tmp_path / "results.json").read_text()))
    assert "FineTec − best baseline" in text


def test_two_processes_sharing_a_folder_keep_each_others_cells(tmp_path):
    """Two stores on one results.json (e.g. one benchmark process per dataset) merge, never clobber."""
    a, b = ResultsStore(tmp_path / "results.json"), ResultsStore(tmp_path / "results.json")
    row = {**_cell("finetec", 0, 0.5), "dataset": "d1"}
    a.add_cell(row)
    b.add_cell({**row, "dataset": "d2", "top1": 0.25})
    a.add_completion([{"dataset": "d1", "filler": "zero", "level": "minor", "mpjpe": 1.0, "n_mpjpe": 1.0,
                       "mpjve": 1.0, "budget": "cpu", "seed": 0, "pattern": "random", "by_gap": None}])
    on_disk = ResultsStore(tmp_path / "results.json")
    assert sorted((c["dataset"], c["top1"]) for c in on_disk.cells) == [("d1", 0.5), ("d2", 0.25)]
    assert len(on_disk.completion) == 1
    b.add_cell({**row, "top1": 0.75})  # the same cell recomputed replaces the old row
    assert sorted((c["dataset"], c["top1"]) for c in ResultsStore(tmp_path / "results.json").cells) == \
        [("d1", 0.75), ("d2", 0.25)]


def test_completion_tables_follow_the_summary_order_whatever_the_merge_order():
    """Merging out dirs in another order must not reshuffle the page's completion tables."""
    def comp(ds, seed, budget="standard"):
        return {"dataset": ds, "filler": "zero", "level": "minor", "mpjpe": 1.0, "n_mpjpe": 1.0, "mpjve": 1.0,
                "budget": budget, "seed": seed, "pattern": "random", "by_gap": None}
    cells = [{**_cell("finetec", 0, 0.5), "dataset": "d2"}, {**_cell("finetec", 0, 0.5), "dataset": "d1"}]
    rows = [comp("d1", 10), comp("d1", 2, "cpu"), comp("d1", 2), comp("d2", 1)]
    text = report.render_markdown({"cells": cells, "completion": rows, "meta": {}})
    heads = [line for line in text.splitlines() if line.startswith("### ") and "— budget" in line
             and "regime" not in line]
    assert heads == ["### d2 — budget `standard`, seed 1", "### d1 — budget `standard`, seed 2",
                     "### d1 — budget `standard`, seed 10", "### d1 — budget `cpu`, seed 2"]


def test_budget_is_one_rule_for_every_dataset():
    """No budget names a dataset: epochs follow the minimum number of optimiser steps."""
    std = BUDGETS["standard"]
    for b in BUDGETS.values():
        assert not any(name in repr(b) for name in ("utd_mhad", "nw_ucla", "penn_action"))
    # 388 training clips (UTD-MHAD after the hold-out), batch 16: 25 steps an epoch -> 80 epochs for 2000 steps
    assert std.epochs_for(388) == 80
    assert std.epochs_for(918) == 35          # NW-UCLA: 58 steps an epoch
    assert std.epochs_for(5000) == std.epochs  # a large dataset: the minimum epochs
    assert BUDGETS["cpu"].epochs_for(388) == 20 and BUDGETS["cpu"].epochs_for(918) == 10
    assert std.epochs_for(388, completion=True) == 77   # 13 steps of 32 an epoch -> 1000 steps
    entries = make_entries(["synthetic:coco17"])
    cells = plan_cells(entries, [METHODS["finetec"]], ["severe"], "per-level", std, 0, Path("x"), True)
    assert cells[0].unit.budget is std


def test_cells_record_their_clip_length_and_a_changed_one_is_refused(tmp_path):
    entries = make_entries(["synthetic:coco17"])
    short = dataclasses.replace(BUDGETS["quick"], clip_len=16)
    store = run_benchmark(entries, [METHODS["stgcnpp_linear"]], ["clean"], "mixed", short,
                          tmp_path, 0, FakeBackend(), explicit_levels=True, stream=io.StringIO())
    assert [c["clip_len"] for c in store.cells] == [16]
    assert all(r["clip_len"] == 16 for r in store.completion)
    # the same folder after the budget's clip length changed: refused, not skipped nor resumed silently
    with pytest.raises(FinetecError, match="trained at T=16.*gives T=32"):
        run_benchmark(entries, [METHODS["stgcnpp_linear"]], ["clean"], "mixed", BUDGETS["quick"],
                      tmp_path, 0, FakeBackend(), explicit_levels=True, stream=io.StringIO())


def test_reader_options_and_title(tmp_path, capsys):
    entries = make_entries(["synthetic:coco17", str(tmp_path)], titles=["Mine", "Theirs"], fmt="npz",
                           options={"layout": "coco17"})
    assert [e.title for e in entries] == ["Mine", "Theirs"]
    assert entries[0].options == () and entries[1].options == (("layout", "coco17"),)
    assert entries[1].cache_name != f"{entries[1].key}.finetec.npz"   # another layout: another cached copy
    with pytest.raises(FinetecError, match="--title given 1 time"):
        make_entries(["synthetic:coco17", str(tmp_path)], titles=["one"])
    rc = main(["benchmark", "--data", str(tmp_path), "-o", "layout", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "not KEY=VALUE" in err


def test_store_reads_schema_1_files(tmp_path):
    """Files written before per-clip predictions: fields renamed, the commit taken from the version."""
    p = tmp_path / "results.json"
    old = {"dataset": "d", "method": "finetec", "regime": "mixed", "level": "severe", "top1": 0.5,
           "mean_class": 0.5, "top5": None, "num_clips": 4, "train_seconds": 12.0, "seed": 0, "budget": "cpu",
           "config": {}, "machine": "m", "code": "finetec 0.1.0 (08a1352+)"}
    p.write_text(json.dumps({"cells": [old], "completion": [
        {"dataset": "d", "filler": "zero", "level": "minor", "mpjpe": 1.0, "n_mpjpe": 1.0, "mpjve": 1.0,
         "budget": "cpu", "seed": 0}]}))
    store = ResultsStore(p)
    c = store.cells[0]
    assert (c["n_test"], c["wall_s"], c["commit"]) == (4, 12.0, "08a1352+") and "num_clips" not in c
    assert store.completion[0]["by_gap"] is None and store.completion[0]["pattern"] == "random"
    store.save()
    assert json.loads(p.read_text())["schema"] == 2


def test_write_docs_keeps_every_benchmark(tmp_path, capsys):
    """--write-docs merges the run into docs/results.json; the page can be regenerated from it alone."""
    _run(tmp_path / "a", FakeBackend())
    docs = tmp_path / "docs" / "results.md"
    assert main(["benchmark", "--report-only", "--out", str(tmp_path / "a"), "--write-docs", str(docs),
                 "--no-plots"]) == 0
    recorded = json.loads(docs.with_suffix(".json").read_text())
    assert len(recorded["cells"]) == 4 and recorded["meta"]["datasets"]["synthetic-coco17"]["test_labels"]
    docs.unlink()
    assert main(["benchmark", "--report-only", "--out", str(tmp_path / "none"), "--write-docs", str(docs),
                 "--no-plots"]) == 0
    assert "| FineTec (`finetec`) | 65.0 (1) | 55.0 (1) |" in docs.read_text()
    assert not (tmp_path / "none").exists()


def test_user_dataset_with_reader_options_and_stored_title(tmp_path):
    """A plain .npz without a layout, read with -o layout=...; its stored title names it."""
    from finetec.benchmark.engine_backend import EngineBackend

    rng = np.random.default_rng(0)
    n = 8
    path = tmp_path / "mine.npz"
    np.savez_compressed(path, keypoint=rng.normal(size=(n, 1, 12, 17, 2)).astype(np.float32),
                        label=np.arange(n) % 2, title="My clips",
                        split__train=np.arange(6), split__test=np.arange(6, 8))
    entry = make_entries([str(path)], fmt="npz", options={"layout": "coco17"})[0]
    facts = EngineBackend("cpu").prepare(entry, tmp_path / "out")
    assert facts["layout"] == "coco17" and facts["title"] == "My clips" and facts["num_test"] == 2
    assert (tmp_path / "out" / "data" / entry.cache_name).exists()
    titled = make_entries([str(path)], titles=["Given"], fmt="npz", options={"layout": "coco17"})[0]
    assert "title" not in EngineBackend("cpu").prepare(titled, tmp_path / "out")

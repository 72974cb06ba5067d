"""Markdown tables and plots from a benchmark's ``results.json``.

Everything here is a pure function of the results dict, so ``docs/results.md`` is regenerated
by a command (``finetec benchmark --report-only --out DIR --write-docs docs/results.md``) and
never edited by hand. Accuracy is shown in percent with one decimal, restoration errors in the
normalised coordinates the models see (the body's scale = 1).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from finetec import viz
from finetec.benchmark.runner import fmt_seconds
from finetec.benchmark.spec import BASELINES, COMPLETION_FILLERS, COMPLETION_MODEL, LEVEL_ORDER, METHODS
from finetec.benchmark.stats import paired_difference
from finetec.fileio import write_text_atomic

ABLATIONS: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.ablation)

FILLER_TITLES = {
    "zero": "zero filling", "copy_lr": "copy left-to-right", "copy_rl": "copy right-to-left",
    "linear": "linear interpolation", "cubic": "cubic interpolation",
    COMPLETION_MODEL: "FineTec completion module",
}

#: A baseline is a candidate for "best baseline" only when paired with FineTec on this many seeds
#: (or on as many as the best-covered baseline, when none has this many).
BEST_MIN_SEEDS = 3


def _pct(x: Any) -> str:
    return "-" if x is None or x != x else f"{100 * float(x):.1f}"


def _num(x: Any, digits: int = 3) -> str:
    return "-" if x is None or x != x else f"{float(x):.{digits}f}"


def _method_order(names: set[str]) -> list[str]:
    known = [m for m in METHODS if m in names]
    return known + sorted(names - set(known))


def _levels(rows: list[dict[str, Any]]) -> list[str]:
    present = {r["level"] for r in rows}
    return [lv for lv in LEVEL_ORDER if lv in present] + sorted(present - set(LEVEL_ORDER))


#: Budgets in page order.
_BUDGET_ORDER = {b: i for i, b in enumerate(("standard", "gpu", "cpu", "quick"))}


def _first_seen(cells: list[dict[str, Any]]) -> dict[str, int]:
    """Dataset -> index of its first cell: the page lists datasets in the order the cells name them."""
    return {d: i for i, d in reversed(list(enumerate(c["dataset"] for c in cells)))}


def _page_key(cells: list[dict[str, Any]]):
    """The page's order as a sort key ``key(dataset, budget, regime, seed)``: real datasets before
    synthetic ones, then budget, dataset (in the order the cells first name it), mixed before
    per-level, seed. Summary tables, per-seed detail and completion tables all use it."""
    first = _first_seen(cells)

    def key(ds: Any, budget: Any, regime: Any = "mixed", seed: Any = None) -> tuple:
        return (str(ds).startswith("synthetic"), _BUDGET_ORDER.get(budget, 9), first.get(ds, len(first)), str(ds),
                regime != "mixed", -1 if seed is None else int(seed))
    return key


def _groups(cells: list[dict[str, Any]]) -> list[tuple[tuple[str, str, str, Any], list[dict[str, Any]]]]:
    """Cells grouped by (dataset, regime, budget, seed), in the summary's order, then by seed."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["regime"], c["budget"], c["seed"]), []).append(c)
    key = _page_key(cells)
    return sorted(groups.items(), key=lambda kv: key(kv[0][0], kv[0][2], kv[0][1], kv[0][3]))


def accuracy_table(cells: list[dict[str, Any]], method_titles: dict[str, str] | None = None) -> str:
    """Rows = methods, columns = levels, entries ``top-1 / mean-class`` (%), for one seed."""
    titles = {m.name: m.title for m in METHODS.values()} | (method_titles or {})
    levels = _levels(cells)
    by = {(c["method"], c["level"]): c for c in cells}
    methods = _method_order({c["method"] for c in cells})
    lines = ["| method | " + " | ".join(levels) + " | final train top-1 |", "|---|" + "---|" * (len(levels) + 1)]
    for m in methods:
        row = [f"{titles.get(m, m)} (`{m}`)"]
        for lv in levels:
            c = by.get((m, lv))
            row.append("" if c is None else f"{_pct(c['top1'])} / {_pct(c['mean_class'])}")
        fit = [by[(m, lv)].get("train_top1") for lv in levels if (m, lv) in by]
        row.append(_pct(fit[0]) if fit and fit[0] is not None else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


#: A model whose final training top-1 is below this has not fit its training data: the report warns.
#: (Training top-1 is measured on corrupted, augmented clips, so a well-fit model may stay well below
#: 100 %; 10-epoch runs on a 560-clip user dataset that a longer run improved by 23 points ended at 34-52 %.)
FIT_WARNING = 0.6


def group_key(c: dict[str, Any]) -> tuple[str, str, str]:
    return c["dataset"], c["regime"], c["budget"]


def by_method_level(cells: list[dict[str, Any]]) -> dict[tuple[str, str], dict[Any, dict[str, Any]]]:
    """(method, level) -> seed -> cell."""
    out: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}
    for c in cells:
        out.setdefault((c["method"], c["level"]), {})[c["seed"]] = c
    return out


def best_baseline(by: dict[tuple[str, str], dict[Any, dict[str, Any]]], level: str) -> str | None:
    """The baseline with the best mean top-1 at ``level`` over the seeds FineTec also ran, among
    the baselines paired with FineTec on enough seeds: :data:`BEST_MIN_SEEDS`, or as many as the
    best-covered baseline has if fewer. A baseline with one lucky seed does not become the
    reference of a five-seed comparison."""
    ft = by.get(("finetec", level), {})
    common = {b: [s for s in ft if s in by.get((b, level), {})] for b in BASELINES}
    common = {b: seeds for b, seeds in common.items() if seeds}
    if not common:
        return None
    need = min(BEST_MIN_SEEDS, max(len(seeds) for seeds in common.values()))
    best = None
    for b, seeds in common.items():
        if len(seeds) < need:
            continue
        mean = sum(float(by[(b, level)][s]["top1"]) for s in seeds) / len(seeds)
        if best is None or mean > best[0]:
            best = (mean, b)
    return best[1]


def comparisons(cells: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For one (dataset, regime, budget) group: per level, FineTec minus the best baseline and
    FineTec minus each ablation, as :class:`~finetec.benchmark.stats.PairedDifference`.

    Returns ``{level: {"baseline": (name, diff) or None, "ablations": {method: diff}}}``.
    """
    by = by_method_level(cells)
    facts = meta.get("datasets", {}).get(cells[0]["dataset"], {}) if cells else {}
    labels, digest = facts.get("test_labels"), facts.get("test_ids_sha1")
    out: dict[str, dict[str, Any]] = {}
    for lv in _levels(cells):
        ft = by.get(("finetec", lv))
        if not ft:
            continue
        entry: dict[str, Any] = {"baseline": None, "ablations": {}}
        b = best_baseline(by, lv)
        if b is not None:
            entry["baseline"] = (b, paired_difference(ft, by[(b, lv)], labels, digest))
        for m in ABLATIONS:
            if (m, lv) in by:
                d = paired_difference(ft, by[(m, lv)], labels, digest)
                if d is not None:
                    entry["ablations"][m] = d
        out[lv] = entry
    return out


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def _spread(seeds: dict[Any, dict[str, Any]] | None) -> str:
    if not seeds:
        return ""
    vals = [float(c["top1"]) for c in seeds.values()]
    if len(vals) == 1:
        return f"{100 * vals[0]:.1f} (1)"
    mean, sd = _mean_sd(vals)
    return f"{100 * mean:.1f} ± {100 * sd:.1f} ({len(vals)})"


def _diff_cell(d) -> str:
    """``+1.2 [-0.4, +2.9] n.d.``: n.d. = not distinguishable, **real** = interval excludes 0 over
    2+ seeds, ``1 seed`` = the interval covers test clips only."""
    if d is None:
        return ""
    if d.method == "none":
        return d.text()
    if d.method == "bootstrap-clips":
        return f"{d.text()} 1 seed"
    return f"{d.text()} {'**real**' if d.real else 'n.d.'}"


def summary_table(cells: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """Rows = methods (top-1 mean ± sd (seeds), %), then the paired differences with 95 % intervals."""
    titles = {m.name: m.title for m in METHODS.values()} | (meta.get("methods") or {})
    levels = _levels(cells)
    by = by_method_level(cells)
    methods = _method_order({c["method"] for c in cells})
    lines = ["| method | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    for m in methods:
        lines.append("| " + " | ".join([f"{titles.get(m, m)} (`{m}`)"] + [_spread(by.get((m, lv))) for lv in levels])
                     + " |")
    comp = comparisons(cells, meta)
    if any(e["baseline"] for e in comp.values()):
        row = ["**FineTec − best baseline** (points, 95 % CI)"]
        for lv in levels:
            e = comp.get(lv, {}).get("baseline")
            row.append("" if e is None or e[1] is None else f"{_diff_cell(e[1])} vs `{e[0]}`")
        lines.append("| " + " | ".join(row) + " |")
    for m in ABLATIONS:
        if any(m in e["ablations"] for e in comp.values()):
            row = [f"FineTec − `{m}` (points, 95 % CI)"]
            row += [_diff_cell(comp.get(lv, {}).get("ablations", {}).get(m)) for lv in levels]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def findings(cells: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> list[str]:
    """Plain sentences on the targets of one (dataset, regime, budget) group, with paired intervals."""
    meta = meta or {}
    out: list[str] = []
    comp = comparisons(cells, meta)
    by = by_method_level(cells)
    for lv, e in comp.items():
        if e["baseline"] is None or e["baseline"][1] is None:
            continue
        b, d = e["baseline"]
        text = f"At **{lv}**, FineTec − best baseline (`{b}`): {d.text()} top-1 points, {_verdict_words(d)}"
        if lv == "severe":
            met = d.mean >= 0.02 and d.lo > 0 and d.n_seeds >= 2
            text += f" (target: at least +2 points with the interval above 0 over 2+ seeds: {'met' if met else 'NOT met'})"
        out.append(text + ".")
    if by.get(("finetec", "clean")) and by.get(("finetec", "severe")):
        clean = _mean_sd([float(c["top1"]) for c in by[("finetec", "clean")].values()])[0]
        severe = _mean_sd([float(c["top1"]) for c in by[("finetec", "severe")].values()])[0]
        gap = severe - clean
        out.append(f"FineTec at severe vs its clean accuracy: {100 * gap:+.1f} points "
                   f"(target: within 3 points: {'met' if gap >= -0.03 else 'NOT met'}).")
    for lv, e in comp.items():
        for m, d in e["ablations"].items():
            if lv != "severe":
                continue
            costs = d.lo > 0 and d.n_seeds >= 2
            out.append(f"Ablation `{m}` at severe: full FineTec minus ablated {d.text()} points, {_verdict_words(d)}: "
                       + ("removing the module costs accuracy." if costs else
                          "this run does NOT show that the module helps."))
    out += fit_warnings(cells)
    return out


def _verdict_words(d) -> str:
    n = f"{d.n_seeds} seed{'s' if d.n_seeds != 1 else ''}"
    how = {"bootstrap": f"bootstrap over {n} and {d.n_clips} test clips",
           "bootstrap-clips": f"bootstrap over {d.n_clips} test clips, {n}",
           "t-seeds": f"t interval over {n}, no per-clip predictions recorded",
           "none": f"{n}, no per-clip predictions: no interval"}[d.method]
    if d.method == "bootstrap-clips":
        return (f"{how}: one seed cannot separate the methods from training noise (seed-to-seed spread "
                f"was 1-7 points on real data); the interval only covers which test clips were drawn")
    return f"{how}: {d.verdict}"


def fit_warnings(cells: list[dict[str, Any]]) -> list[str]:
    """A warning per trained model whose final training top-1 is below :data:`FIT_WARNING`."""
    seen: dict[tuple, dict[str, Any]] = {}
    for c in cells:
        t = c.get("train_top1")
        if t is not None and float(t) < FIT_WARNING:
            seen.setdefault((c["method"], c["seed"], c["regime"], c["level"] if c["regime"] != "mixed" else None), c)
    out = []
    for (m, seed, _, lv), c in seen.items():
        out.append(f"**Warning: `{m}` (seed {seed}{', trained at ' + lv if lv else ''}) has not fit its training "
                   f"data**: final training top-1 {100 * float(c['train_top1']):.1f} % (< {100 * FIT_WARNING:.0f} %) "
                   f"after {c.get('epochs') or '?'} epochs; it is undertrained and its accuracies understate the "
                   f"method. Train longer (a larger budget) before reading its comparisons.")
    return out


def _random_pattern(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The completion rows of the ``random`` pattern (the tables here are level x filler)."""
    return [r for r in rows if r.get("pattern", "random") == "random"]


def completion_table(rows: list[dict[str, Any]]) -> str:
    """Rows = fillers (+ the completion module), columns = levels, ``MPJPE / N-MPJPE / MPJVE``."""
    levels = _levels(rows)
    by = {(r["filler"], r["level"]): r for r in rows}
    present = {r["filler"] for r in rows}
    fillers = [f for f in (*COMPLETION_FILLERS, COMPLETION_MODEL) if f in present] + sorted(
        present - set(COMPLETION_FILLERS) - {COMPLETION_MODEL})
    lines = ["| filler | " + " | ".join(f"{lv}: MPJPE / N-MPJPE / MPJVE" for lv in levels) + " |",
             "|---|" + "---|" * len(levels)]
    best = {lv: min((float(r["mpjpe"]), f) for (f, l2), r in by.items() if l2 == lv and r["mpjpe"] == r["mpjpe"])[1]
            for lv in levels if any(l2 == lv and r["mpjpe"] == r["mpjpe"] for (f, l2), r in by.items())}
    for f in fillers:
        row = [f"{FILLER_TITLES.get(f, f)} (`{f}`)"]
        for lv in levels:
            r = by.get((f, lv))
            if r is None:
                row.append("")
                continue
            mp = _num(r["mpjpe"])
            row.append(f"{'**' + mp + '**' if best.get(lv) == f else mp} / {_num(r['n_mpjpe'])} / {_num(r['mpjve'])}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def provenance_table(cells: list[dict[str, Any]], relative_to: Path | None = None) -> str:
    """One line per cell: the numbers with the command, config, seed, machine and wall time."""
    lines = ["| dataset | method | regime | level | seed | top-1 | mean-class | test clips | train top-1 "
             "| wall time | budget | config | machine | commit | command |", "|---" * 15 + "|"]
    for c in cells:
        cfg = c.get("config_file") or ""
        if cfg and relative_to is not None:
            cfg = _rel(cfg, relative_to)
        lines.append("| " + " | ".join([
            c["dataset"], f"`{c['method']}`", c["regime"], c["level"], str(c["seed"]), _pct(c["top1"]),
            _pct(c["mean_class"]), "-" if c.get("n_test") is None else str(c["n_test"]), _pct(c.get("train_top1")),
            _seconds(c.get("wall_s")), c["budget"],
            f"`{cfg}`" if cfg else _config_summary(c.get("config")), c.get("machine") or "-",
            c.get("commit") or "-", f"`{c['command']}`" if c.get("command") else "-",
        ]) + " |")
    return "\n".join(lines)


def _config_summary(cfg: Any) -> str:
    if not isinstance(cfg, dict):
        return "-"
    p, o, m = cfg.get("pipeline", {}), cfg.get("optim", {}), cfg.get("model", {})
    return (f"{m.get('name')}, T={p.get('clip_len')}, filler={p.get('filler')}, "
            f"epochs={o.get('epochs')}, batch={o.get('batch_size')}")


def _seconds(s: Any) -> str:
    return "-" if s is None else fmt_seconds(float(s))


def _rel(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


INTERVALS = ("Differences are **paired**: every method is tested on the identical corrupted test clips, so "
             "FineTec and a rival are compared clip by clip and seed by seed. Each difference is the mean "
             "top-1 difference in points with its **95 % interval** from a two-way percentile bootstrap "
             "(2000 replicates drawing the seeds and, independently, the test clips with replacement; "
             "`finetec.benchmark.stats`), widened where needed to the t interval over the per-seed "
             "differences, since a bootstrap over 2-3 seeds understates training noise. **real**: the "
             "interval excludes 0 over 2 or more seeds; **n.d.**: "
             "not distinguishable; **1 seed**: the interval covers only which test clips were drawn, not "
             "training noise (seed-to-seed spread was 1-7 points on real data), so one seed decides nothing. "
             "Cells recorded without per-clip predictions use a t interval over the per-seed differences.")


def _dataset_order(cells: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    keys = list(dict.fromkeys(group_key(c) for c in cells))
    key = _page_key(cells)
    return sorted(keys, key=lambda k: key(k[0], k[2], k[1]))


def _facts_line(facts: dict[str, Any], cfg: dict[str, Any], ds: str) -> list[str]:
    out = []
    if facts.get("num_test"):
        vf = (cfg or {}).get("data", {}).get("val_fraction", 0.1)
        held = f"{100 * vf:.0f} % held out to select the checkpoint" if vf else \
            "none held out: the last epoch's model is tested"
        out.append(f"Data: `{facts.get('spec', ds)}` ({facts.get('layout')}, {facts.get('dims')}D, "
                   f"{facts.get('num_classes')} classes); trained on {facts.get('num_train')} clips "
                   f"({held}), tested on {facts.get('num_test')}.")
    if (cfg or {}).get("optim"):
        p, o = cfg.get("pipeline", {}), cfg["optim"]
        out.append(f"Training: T={p.get('clip_len')}, {o.get('epochs')} epochs, batch {o.get('batch_size')}, "
                   f"{o.get('name')} lr {o.get('lr')}, augment {p.get('augment', False)}, align_view "
                   f"{p.get('align_view', False)}; the same for every method.")
    return out


def render_markdown(results: dict[str, Any], images: dict[str, str] | None = None,
                    relative_to: Path | None = None, source: str | None = None, detail: bool = True) -> str:
    """The results page: a summary per dataset (top-1 mean ± sd over seeds and the paired
    intervals), findings, then per-seed detail, completion tables, plots and provenance."""
    cells, comp = results.get("cells", []), _random_pattern(results.get("completion", []))
    meta = results.get("meta", {})
    titles = {k: v.get("title", k) for k, v in meta.get("datasets", {}).items()}
    out = _page_header(meta, source)
    if not cells and not comp:
        out += ["", "_No finished cells yet._"]
    out += _summary_section(cells, meta, titles)
    out += _completion_section(comp, titles, relative_to, cells)
    if detail and cells:
        out += _per_seed_section(cells, meta, titles)
    if images:
        out += ["", "## Plots", ""]
        for title, path in images.items():
            out += [f"![{title}]({path})", ""]
    if detail:
        out += _provenance_section(cells, comp, relative_to)
    return "\n".join(out) + "\n"


def _page_header(meta: dict[str, Any], source: str | None) -> list[str]:
    out = ["# Benchmark results", ""]
    out.append("Generated from `results.json` by `finetec benchmark --report-only`"
               + (f" (source: `{source}`)" if source else "") + "; never edited by hand.")
    out.append("")
    out.append("Top-1 accuracy (%) on the dataset's test split, corrupted at the column's level (frames dropped: "
               "clean 0 %, minor 25 %, moderate 50 %, severe 75 %; pattern `random`), **mean ± sd (seeds)**. "
               "`mixed`: one model per method trained with a level drawn per clip, tested at every level; "
               "`per-level`: one model per level.")
    out += ["", INTERVALS]
    for note in meta.get("notes", []):
        out += ["", f"**Note.** {note}"]
    return out


def _summary_section(cells: list[dict[str, Any]], meta: dict[str, Any], titles: dict[str, str]) -> list[str]:
    """One table per (dataset, regime, budget) with its facts line and findings."""
    out = ["", "## Summary"] if cells else []
    for key in _dataset_order(cells):
        ds, regime, budget = key
        group = [c for c in cells if group_key(c) == key]
        out += ["", f"### {titles.get(ds, ds)} — regime `{regime}`, budget `{budget}`", ""]
        lines = _facts_line(meta.get("datasets", {}).get(ds, {}), group[0].get("config") or {}, ds)
        if lines:
            out += [" ".join(lines), ""]
        out.append(summary_table(group, meta))
        f = findings(group, meta)
        if f:
            out += [""] + [f"- {line}" for line in f]
    return out


def _completion_section(comp: list[dict[str, Any]], titles: dict[str, str], relative_to: Path | None,
                        cells: list[dict[str, Any]] = ()) -> list[str]:
    """The restoration-error tables, one per (dataset, budget, seed), in the summary's order
    (budget, then dataset as the cells first name it, then seed) whatever order they were merged in."""
    comp_groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in comp:
        comp_groups.setdefault((r["dataset"], r.get("budget"), r.get("seed")), []).append(r)
    key = _page_key(cells)
    comp_groups = dict(sorted(comp_groups.items(), key=lambda kv: key(kv[0][0], kv[0][1], seed=kv[0][2])))
    if not comp_groups:
        return []
    out = ["", "## Completion: restoration error on the missing frames", "",
           "MPJPE (mean joint position error), N-MPJPE (after the least-squares optimal scale per clip) "
           "and MPJVE (velocity error) over the joints of the dropped frames that the original clip "
           "observed, in normalised coordinates; lower is better, the best MPJPE per level in bold. "
           "The completion module is FineTec's stage 1, trained once per dataset on its own random "
           "masks and shared by every level and regime. Pattern `random` only; every pattern, real "
           "occlusion and the errors by gap length: `docs/results_completion.md`."]
    for (ds, budget, seed), rows in comp_groups.items():
        out += ["", f"### {titles.get(ds, ds)} — budget `{budget}`, seed {seed}", "", completion_table(rows)]
        model_row = next((r for r in rows if r["filler"] == COMPLETION_MODEL and r.get("config_file")), None)
        if model_row is not None:
            cfg = model_row["config_file"] if relative_to is None else _rel(model_row["config_file"], relative_to)
            out += ["", f"Completion module: config `{cfg}`, stage-1 training wall time "
                        f"{_seconds(model_row.get('wall_s'))}, seed {seed}, machine "
                        f"{model_row.get('machine', '?')}; command `{model_row.get('command', '?')}`."]
    return out


def _per_seed_section(cells: list[dict[str, Any]], meta: dict[str, Any], titles: dict[str, str]) -> list[str]:
    out = ["", "## Per-seed detail", "",
           "**top-1 / mean-class (%)** per seed, and the final training top-1 of each model (a model below "
           f"{100 * FIT_WARNING:.0f} % has not fit its training data)."]
    for (ds, regime, budget, seed), group in _groups(cells):
        out += ["", f"### {titles.get(ds, ds)} — regime `{regime}`, budget `{budget}`, seed {seed}", "",
                accuracy_table(group, meta.get("methods"))]
    return out


def _provenance_section(cells: list[dict[str, Any]], comp: list[dict[str, Any]],
                        relative_to: Path | None) -> list[str]:
    out: list[str] = []
    if cells:
        out += ["", "## Provenance", "",
                "Every accuracy above with the command that produced it, the training config it ran "
                "(in the run folder; `finetec train CONFIG` re-runs it alone), the seed, the machine, the "
                "commit and the training wall time of the model (summed over resumed sittings; in the mixed "
                "regime one model serves the four levels). `-`: not recorded.", "",
                provenance_table(cells, relative_to)]
    if comp:
        machines = sorted({str(r.get("machine", "?")) for r in comp})
        cmds = sorted({str(r.get("command", "?")) for r in comp})
        out += ["", "Completion rows: machine " + "; ".join(machines) + "; command "
                + "; ".join(f"`{c}`" for c in cmds) + "."]
    return out


def render_summary(results: dict[str, Any]) -> str:
    """The comparison for the terminal: the summary tables, findings and completion tables."""
    import re

    text = render_markdown(results, images=None, detail=False)
    lines = text.splitlines()[1:]
    body = [ln for ln in lines if not ln.startswith(("Generated from", "MPJPE (mean"))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip()


def make_plots(results: dict[str, Any], img_dir: Path, prefix: str = "") -> dict[str, Path]:
    """Top-1 vs level per method (one figure per regime and budget) and completion error vs level
    per filler, via :mod:`finetec.viz`. Returns title -> written file."""
    written: dict[str, Path] = {}
    cells, comp = results.get("cells", []), _random_pattern(results.get("completion", []))
    img_dir.mkdir(parents=True, exist_ok=True)
    combos: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cells:
        combos.setdefault((c["regime"], c["budget"]), []).append(c)
    for (regime, budget), group in combos.items():
        path = img_dir / f"{prefix}accuracy_{regime}_{budget}.png"
        viz.plot_accuracy_vs_level(group, path)
        written[f"Top-1 accuracy vs corruption level ({regime}, budget {budget})"] = path
    by_budget: dict[str, list[dict[str, Any]]] = {}
    for r in comp:
        by_budget.setdefault(str(r.get("budget")), []).append(r)
    for budget, rows in by_budget.items():
        path = img_dir / f"{prefix}completion_{budget}.png"
        viz.plot_completion_vs_level(rows, path)
        written[f"Completion error (MPJPE) vs corruption level (budget {budget})"] = path
    return written


def write_report(results: dict[str, Any], md_path: Path, img_dir: Path, plots: bool = True,
                 prefix: str = "", source: str | None = None) -> Path:
    """Write the Markdown page (and its plots, linked relative to the page)."""
    images: dict[str, str] = {}
    if plots:
        for title, p in make_plots(results, img_dir, prefix).items():
            images[title] = _rel(str(p), md_path.parent)
    text = render_markdown(results, images, relative_to=Path.cwd(), source=source)
    write_text_atomic(md_path, text)
    return md_path

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

from finetec.benchmark.spec import BASELINES, COMPLETION_FILLERS, COMPLETION_MODEL, LEVEL_ORDER, METHODS

ABLATIONS: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.ablation)

FILLER_TITLES = {
    "zero": "zero filling", "copy_lr": "copy left-to-right", "copy_rl": "copy right-to-left",
    "linear": "linear interpolation", "cubic": "cubic interpolation",
    COMPLETION_MODEL: "FineTec completion module",
}


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


def _groups(cells: list[dict[str, Any]]) -> list[tuple[tuple[str, str, str, Any], list[dict[str, Any]]]]:
    """Cells grouped by (dataset, regime, budget, seed), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["regime"], c["budget"], c["seed"]), []).append(c)
    # real datasets first (in the order first seen), synthetic data last; per dataset mixed, then per-level
    first = {d: i for i, d in reversed(list(enumerate(c["dataset"] for c in cells)))}
    return sorted(groups.items(), key=lambda kv: (str(kv[0][0]).startswith("synthetic"), first[kv[0][0]],
                                                  kv[0][1] != "mixed"))


def accuracy_table(cells: list[dict[str, Any]], method_titles: dict[str, str] | None = None) -> str:
    """Rows = methods, columns = levels, entries ``top-1 / mean-class`` (%), for one group.

    Below the methods: FineTec minus the best baseline at each level (top-1 points).
    """
    titles = {m.name: m.title for m in METHODS.values()} | (method_titles or {})
    levels = _levels(cells)
    by = {(c["method"], c["level"]): c for c in cells}
    methods = _method_order({c["method"] for c in cells})
    lines = ["| method | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    for m in methods:
        row = [f"{titles.get(m, m)} (`{m}`)"]
        for lv in levels:
            c = by.get((m, lv))
            row.append("" if c is None else f"{_pct(c['top1'])} / {_pct(c['mean_class'])}")
        lines.append("| " + " | ".join(row) + " |")
    if "finetec" in methods and any(b in methods for b in BASELINES):
        row = ["**FineTec − best baseline** (top-1 points)"]
        for lv in levels:
            d = finetec_margin(cells, lv)
            row.append("" if d is None else f"{100 * d[0]:+.1f} (vs `{d[1]}`)")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def finetec_margin(cells: list[dict[str, Any]], level: str) -> tuple[float, str] | None:
    """(FineTec top-1 minus the best baseline's, that baseline) at ``level``; None if either is absent."""
    by = {(c["method"], c["level"]): c for c in cells}
    ft = by.get(("finetec", level))
    base = [(by[(b, level)]["top1"], b) for b in BASELINES if (b, level) in by]
    if ft is None or not base:
        return None
    best, name = max(base)
    return float(ft["top1"]) - float(best), name


def difference_noise(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """One standard error of the top-1 difference between two cells from test-set sampling alone:
    sqrt(p(1-p)/n_a + p(1-p)/n_b) with p their mean accuracy; None without clip counts."""
    try:
        na, nb = int(a["num_clips"]), int(b["num_clips"])
    except (KeyError, TypeError, ValueError):
        return None
    if na < 1 or nb < 1:
        return None
    p = (float(a["top1"]) + float(b["top1"])) / 2
    return math.sqrt(p * (1 - p) / na + p * (1 - p) / nb)


def _noise_note(diff: float, se: float | None) -> str:
    if se is None or abs(diff) >= se:
        return ""
    return (f"; within one unpaired standard error of test-set sampling (±{100 * se:.1f} points, "
            "conservative for a shared test set): not distinguishable")


def findings(cells: list[dict[str, Any]]) -> list[str]:
    """Plain sentences on the targets: FineTec vs the best baseline, severe vs clean, ablations."""
    out: list[str] = []
    by = {(c["method"], c["level"]): c for c in cells}
    for lv in _levels(cells):
        d = finetec_margin(cells, lv)
        if d is None:
            continue
        if d[0] > 0:
            verdict = f"beats the best baseline (`{d[1]}`) by {100 * d[0]:+.1f} top-1 points"
        elif d[0] < 0:
            verdict = f"does NOT beat the best baseline (`{d[1]}`): {100 * d[0]:+.1f} top-1 points"
        else:
            verdict = f"ties with the best baseline (`{d[1]}`)"
        target = _noise_note(d[0], difference_noise(by[("finetec", lv)], by[(d[1], lv)]))
        if lv == "severe":
            target += f" (target: at least +1.0 point: {'met' if d[0] >= 0.01 - 1e-9 else 'NOT met'})"
        out.append(f"At **{lv}**, FineTec {verdict}{target}.")
    if ("finetec", "clean") in by and ("finetec", "severe") in by:
        gap = float(by[("finetec", "severe")]["top1"]) - float(by[("finetec", "clean")]["top1"])
        met = "met" if gap >= -0.03 else "NOT met"
        out.append(f"FineTec at severe vs its clean accuracy: {100 * gap:+.1f} points "
                   f"(target: within 3 points: {met}).")
    full = by.get(("finetec", "severe"))
    if full is not None:
        for m in ABLATIONS:
            a = by.get((m, "severe"))
            if a is None:
                continue
            cost = float(full["top1"]) - float(a["top1"])
            word = "costs accuracy" if cost > 0 else "does NOT cost accuracy"
            out.append(f"Ablation `{m}` at severe: removing the module {word} (full FineTec "
                       f"{_pct(full['top1'])} vs {_pct(a['top1'])} without it: {100 * cost:+.1f} points"
                       f"{_noise_note(cost, difference_noise(full, a))}).")
    return out


def seed_summary(cells: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Top-1 over seeds, for every (dataset, regime, budget) where some (method, level) ran with
    two seeds or more.

    Returns ``{(dataset, regime, budget): {"top1": {(method, level): {seed: top1}},
    "margins": {level: (baseline, [FineTec - baseline per common seed])},
    "ablations": {method: [FineTec - ablated model at severe per common seed]}}}`` where the
    baseline is the one with the best mean top-1 over the seeds FineTec also ran.
    """
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    groups: dict[tuple[str, str, str], dict[tuple[str, str], dict[Any, float]]] = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["regime"], c["budget"]), {}).setdefault(
            (c["method"], c["level"]), {})[c["seed"]] = float(c["top1"])
    for key, by in groups.items():
        multi = {k: v for k, v in by.items() if len(v) >= 2}
        if not multi:
            continue
        margins: dict[str, tuple[str, list[float]]] = {}
        for (m, lv), ft in multi.items():
            if m != "finetec":
                continue
            best = None
            for b in BASELINES:
                common = sorted(set(ft) & set(by.get((b, lv), {})), key=str)
                if len(common) < 2:
                    continue
                diffs = [ft[s] - by[(b, lv)][s] for s in common]
                mean_b = sum(by[(b, lv)][s] for s in common) / len(common)
                if best is None or mean_b > best[0]:
                    best = (mean_b, b, diffs)
            if best is not None:
                margins[lv] = (best[1], best[2])
        full = by.get(("finetec", "severe"), {})
        ablations = {}
        for m in ABLATIONS:
            common = sorted(set(full) & set(by.get((m, "severe"), {})), key=str)
            if len(common) >= 2:
                ablations[m] = [full[s] - by[(m, "severe")][s] for s in common]
        out[key] = {"top1": multi, "margins": margins, "ablations": ablations}
    return out


def seed_findings(summary: dict[str, Any]) -> list[str]:
    """Sentences on the ablations at severe, paired by seed (mean ± sd of full minus ablated)."""
    out = []
    for m, diffs in summary.get("ablations", {}).items():
        mean, sd = _mean_sd(diffs)
        word = "costs accuracy" if mean > 0 else "does NOT cost accuracy"
        reliable = "" if abs(mean) > sd else "; smaller than its spread over seeds: not a reliable difference"
        out.append(f"Ablation `{m}` at severe, paired over {len(diffs)} seeds: removing the module {word} "
                   f"(full FineTec minus ablated: {100 * mean:+.1f} ± {100 * sd:.1f} points{reliable}).")
    return out


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def seed_table(summary: dict[str, Any], method_titles: dict[str, str] | None = None) -> str:
    """Rows = methods, columns = levels, entries ``mean ± sd (n seeds)`` of top-1 (%), then
    FineTec minus the best baseline, paired by seed."""
    titles = {m.name: m.title for m in METHODS.values()} | (method_titles or {})
    top1 = summary["top1"]
    levels = _levels([{"level": lv} for _, lv in top1])
    methods = _method_order({m for m, _ in top1})
    def spread(v: dict[Any, float] | None) -> str:
        if v is None:
            return ""
        mean, sd = _mean_sd(list(v.values()))
        return f"{100 * mean:.1f} ± {100 * sd:.1f} ({len(v)})"

    def margin(mg: tuple[str, list[float]] | None) -> str:
        if mg is None:
            return ""
        mean, sd = _mean_sd(mg[1])
        return f"{100 * mean:+.1f} ± {100 * sd:.1f} (vs `{mg[0]}`, {len(mg[1])} seeds)"

    lines = ["| method | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    lines += ["| " + " | ".join([f"{titles.get(m, m)} (`{m}`)"] + [spread(top1.get((m, lv))) for lv in levels]) + " |"
              for m in methods]
    if summary["margins"]:
        lines.append("| " + " | ".join(["**FineTec − best baseline**, paired by seed (top-1 points)"]
                                       + [margin(summary["margins"].get(lv)) for lv in levels]) + " |")
    return "\n".join(lines)


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
    lines = ["| dataset | method | regime | level | top-1 | mean-class | top-5 | test clips | train wall time "
             "| seed | budget | config | machine | code | command |", "|---" * 15 + "|"]
    for c in cells:
        cfg = c.get("config_file") or ""
        if cfg and relative_to is not None:
            cfg = _rel(cfg, relative_to)
        lines.append("| " + " | ".join([
            c["dataset"], f"`{c['method']}`", c["regime"], c["level"], _pct(c["top1"]), _pct(c["mean_class"]),
            _pct(c.get("top5")), str(c["num_clips"]), _seconds(c["train_seconds"]), str(c["seed"]), c["budget"],
            f"`{cfg}`" if cfg else _config_summary(c.get("config")), c["machine"], c.get("code") or "-",
            f"`{c.get('command', '')}`",
        ]) + " |")
    return "\n".join(lines)


def _config_summary(cfg: Any) -> str:
    if not isinstance(cfg, dict):
        return "-"
    p, o, m = cfg.get("pipeline", {}), cfg.get("optim", {}), cfg.get("model", {})
    return (f"{m.get('name')}, T={p.get('clip_len')}, filler={p.get('filler')}, "
            f"epochs={o.get('epochs')}, batch={o.get('batch_size')}")


def _seconds(s: Any) -> str:
    from finetec.benchmark.runner import fmt_seconds

    return "-" if s is None else fmt_seconds(float(s))


def _rel(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def render_markdown(results: dict[str, Any], images: dict[str, str] | None = None,
                    relative_to: Path | None = None, source: str | None = None) -> str:
    """The whole results page: accuracy tables per dataset and regime, findings, completion
    tables, plots (``images``: title -> relative path), and the provenance of every number."""
    cells, comp = results.get("cells", []), results.get("completion", [])
    meta = results.get("meta", {})
    titles = {k: v.get("title", k) for k, v in meta.get("datasets", {}).items()}
    out = ["# Benchmark results", ""]
    out.append("Generated from `results.json` by `finetec benchmark --report-only`"
               + (f" (source: `{source}`)" if source else "") + "; never edited by hand. Re-run the "
               "commands listed under *Provenance* to reproduce a number.")
    out.append("")
    out.append("Accuracy entries are **top-1 / mean-class accuracy (%)** on the dataset's test split, "
               "corrupted at the column's level (fraction of the clip's frames dropped: clean 0 %, minor "
               "25 %, moderate 50 %, severe 75 %; pattern `random`). The test corruption is a pure "
               "function of (seed, clip id, level, pattern): every method sees the identical corrupted "
               "test set. `per-level`: one model trained per level (as the paper's tables); `mixed`: one "
               "model trained with a level drawn per training clip, tested at every level.")
    for note in meta.get("notes", []):
        out += ["", f"**Note.** {note}"]
    if not cells and not comp:
        out += ["", "_No finished cells yet._"]
    for (ds, regime, budget, seed), group in _groups(cells):
        out += ["", f"## {titles.get(ds, ds)} — regime `{regime}`, budget `{budget}`, seed {seed}", ""]
        facts = meta.get("datasets", {}).get(ds, {})
        if facts.get("num_test"):
            vf = (group[0].get("config") or {}).get("data", {}).get("val_fraction", 0.1)  # the engine's default
            out += [f"Data: `{facts.get('spec', ds)}` ({facts.get('layout')}, {facts.get('dims')}D, "
                    f"{facts.get('num_classes')} classes); trained on the `train` split ({facts.get('num_train')} "
                    f"clips, {100 * vf:.0f} % of them held out to select the checkpoint), tested on the `test` split "
                    f"({facts.get('num_test')} clips).", ""]
        cfg = group[0].get("config") or {}
        if cfg.get("optim"):
            p, o = cfg.get("pipeline", {}), cfg["optim"]
            out += [f"Training: clip length T={p.get('clip_len')}, {o.get('epochs')} epochs, batch "
                    f"{o.get('batch_size')}, {o.get('name')} lr {o.get('lr')}, the same for every method "
                    f"(each run's full config is listed under Provenance).", ""]
        out.append(accuracy_table(group, meta.get("methods")))
        f = findings(group)
        if f:
            out += [""] + [f"- {s}" for s in f]
    summaries = seed_summary(cells)
    if summaries:
        out += ["", "## Across seeds", "",
                "Where a method ran with several seeds (the seed sets both the training and the test "
                "corruption), the spread of top-1 over seeds: **mean ± standard deviation (number of seeds)**, "
                "in %. The last row pairs FineTec with the baseline of best mean accuracy seed by seed; a "
                "margin smaller than its standard deviation is not a reliable difference."]
        for (ds, regime, budget), summ in summaries.items():
            out += ["", f"### {titles.get(ds, ds)} — regime `{regime}`, budget `{budget}`", "",
                    seed_table(summ, meta.get("methods"))]
            sf = seed_findings(summ)
            if sf:
                out += [""] + [f"- {line}" for line in sf]
    comp_groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in comp:
        comp_groups.setdefault((r["dataset"], r.get("budget"), r.get("seed")), []).append(r)
    if comp_groups:
        out += ["", "## Completion: restoration error on the missing frames", "",
                "MPJPE (mean joint position error), N-MPJPE (after the least-squares optimal scale per clip) "
                "and MPJVE (velocity error) over the joints of the dropped frames that the original clip "
                "observed, in normalised coordinates; lower is better, the best MPJPE per level in bold. "
                "The completion module is FineTec's stage 1, trained once per dataset on its own random "
                "masks (drop ratio 0.25-0.85, five patterns) and shared by every level and regime."]
        for (ds, budget, seed), rows in comp_groups.items():
            out += ["", f"### {titles.get(ds, ds)} — budget `{budget}`, seed {seed}", "", completion_table(rows)]
            model_row = next((r for r in rows if r["filler"] == COMPLETION_MODEL and r.get("config_file")), None)
            if model_row is not None:
                cfg = model_row["config_file"] if relative_to is None else _rel(model_row["config_file"], relative_to)
                out += ["", f"Completion module: config `{cfg}`, stage-1 training wall time "
                            f"{_seconds(model_row.get('train_seconds'))}, seed {seed}, machine "
                            f"{model_row.get('machine', '?')}; command `{model_row.get('command', '?')}`."]
    if images:
        out += ["", "## Plots", ""]
        for title, path in images.items():
            out += [f"![{title}]({path})", ""]
    if cells:
        out += ["", "## Provenance", "",
                "Every accuracy above with the command that produced it, the training config it ran "
                "(written in the run folder; `finetec train CONFIG` re-runs it alone), the seed, the machine "
                "and the training wall time (summed over resumed sittings).", "",
                provenance_table(cells, relative_to)]
    if comp:
        machines = sorted({r.get("machine", "?") for r in comp})
        cmds = sorted({r.get("command", "?") for r in comp})
        out += ["", "Completion rows: machine " + "; ".join(machines) + "; command "
                + "; ".join(f"`{c}`" for c in cmds) + "."]
    return "\n".join(out) + "\n"


def render_summary(results: dict[str, Any]) -> str:
    """The comparison for the terminal: accuracy tables, findings and completion tables."""
    text = render_markdown({**results, "cells": results.get("cells", [])}, images=None)
    head, _, _ = text.partition("\n## Provenance")
    lines = head.splitlines()
    # drop the page title and the long explanation paragraphs, keep the tables
    body = [ln for ln in lines[1:] if not ln.startswith(("Generated from", "Accuracy entries", "MPJPE (mean"))]
    import re

    text = "Top-1 / mean-class accuracy (%) on the fixed corrupted test split:\n" + "\n".join(body)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def make_plots(results: dict[str, Any], img_dir: Path, prefix: str = "") -> dict[str, Path]:
    """Top-1 vs level per method (one figure per regime and budget) and completion error vs level
    per filler, via :mod:`finetec.viz`. Returns title -> written file."""
    from finetec import viz

    written: dict[str, Path] = {}
    cells, comp = results.get("cells", []), results.get("completion", [])
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
    from finetec.fileio import write_text_atomic

    images: dict[str, str] = {}
    if plots:
        for title, p in make_plots(results, img_dir, prefix).items():
            images[title] = _rel(str(p), md_path.parent)
    text = render_markdown(results, images, relative_to=Path.cwd(), source=source)
    write_text_atomic(md_path, text)
    return md_path

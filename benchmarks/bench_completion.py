"""Benchmark: FineTec's completion module (stage 1) against the classical gap fillers, where it matters.

For each dataset and each completion recipe (``configs/<recipe>_<dataset>.yaml``): train the module
with the engine (or reuse the finished run in ``<out>/<recipe>_<dataset>``), then measure on the
test split, for the five fillers (zero, copy_lr, copy_rl, linear, cubic) and the trained module,
the restoration error on the missing entries (missing after corruption, observed in the clean clip;
normalised coordinates):

- at every level (minor, moderate, severe) and pattern (random, periodic, prefix, suffix, middle):
  MPJPE, N-MPJPE, MPJVE and MPJPE by gap-length group (1-3, 4-7, 8-15, 16+ frames, edge);
- on real occlusion (datasets whose clips have real missing joints, e.g. Penn Action): every test
  clip loses the joints that ANOTHER test clip's pose estimator did not see (its real visibility
  flags, sampled to the same ``clip_len``), so the gaps are the ones a pose estimator leaves
  (record ``level = pattern = "real"``);
- for the module also the cost of one clip (``ms_per_clip``: batch of one, one thread) and, when it
  predicts an expected error per entry (``model.uncertainty``), the Spearman rank correlation of
  that prediction with the real error (``uncertainty_spearman``).

Every method sees the identical corrupted clips (the module checkpoint's own test pipeline, the
fixed test corruption of ``--seed``). The rows go into the ``completion`` records of ``--results``
(default ``docs/results.json``; schema in ``docs/results_schema.md``) with ``budget`` = the
recipe name, and ``--md`` (default ``docs/results_completion.md``) is generated from those records.

Targets (issue 11, at severe, Penn Action and NW-UCLA): gaps >= 8 frames and edge gaps <= 0.7 x
linear; prefix / suffix / middle <= 0.6 x linear; all missing entries <= 0.85 x linear with no gap
group worse than linear by more than 2 %; <= 5 ms per T=64 clip on one core.

Usage (from the project root)::

    python benchmarks/bench_completion.py --datasets penn-action nw-ucla utd-mhad \\
        --recipes completion_t64_patterns
    python benchmarks/bench_completion.py --report-only          # regenerate the Markdown page

``--checkpoint RECIPE:DATASET=DIR`` measures an existing completion checkpoint (e.g. a benchmark
stage 1, or a module pooled over several datasets of a family) under the name RECIPE instead of
training one; when DIR was trained on another dataset, DATASET's own test split (from
``configs/completion_t64_<DATASET>.yaml``) is moved onto the checkpoint's layout by its joint map.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("minor", "moderate", "severe")
PATTERNS = ("random", "periodic", "prefix", "suffix", "middle")
REAL = "real"
#: dataset name of the configs -> dataset key of docs/results.json
KEYS = {"penn-action": "penn_action", "nw-ucla": "nw_ucla", "utd-mhad": "utd_mhad", "synthetic": "synthetic"}
TITLES = {"penn_action": "Penn Action", "nw_ucla": "NW-UCLA", "utd_mhad": "UTD-MHAD", "synthetic": "synthetic"}
SOURCE = "benchmarks/bench_completion.py"


class FillerModel(nn.Module):
    """A classical gap filler behind the completion model's interface: ``{"completed": ...}``."""

    def __init__(self, method: str):
        super().__init__()
        self.method = method
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a device

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        from finetec.data.fillers import fill_batch

        return {"completed": fill_batch(x, mask, self.method)}


class Recorder(nn.Module):
    """Wraps a completion model and keeps every output's ``uncertainty`` (for the rank correlation)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.outputs: list[dict[str, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(x, mask)
        self.outputs.append(out)
        return out


def _wall_s(run: Path) -> float | None:
    """Training wall time of a run: the sum of its epochs' times in ``metrics.jsonl``."""
    import json

    try:
        return float(sum(json.loads(ln)["time"] for ln in (run / "metrics.jsonl").read_text().splitlines() if ln))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_recipe(recipe: str, name: str, out: Path, epochs: int | None, threads: int) -> Path:
    """Train ``configs/<recipe>_<name>.yaml`` into ``<out>/<recipe>_<name>`` (a finished run is reused)."""
    from finetec.engine.config import load_config
    from finetec.engine.train import train

    run = out / f"{recipe}_{name}"
    sets = [f"runtime.threads={threads}", "runtime.device=cpu"] + ([f"optim.epochs={epochs}"] if epochs else [])
    cfg = load_config(ROOT / "configs" / f"{recipe}_{name}.yaml", sets)
    last = run / "last" / "checkpoint.json"
    if last.exists() and (run / "best" / "checkpoint.json").exists():
        import json

        if json.loads(last.read_text()).get("epoch") == cfg.optim.epochs:
            print(f"[{recipe} {name}] reusing the finished run {run}", flush=True)
            return run
    res = train(cfg, run)  # resumes an unfinished run
    print(f"[{recipe} {name}] trained {res['epochs']} epochs, best val_mpjpe {res['best_metric']:.4f} at epoch "
          f"{res['best_epoch']}", flush=True)
    return run


def _test_data(info: dict[str, Any], max_clips: int | None, name: str | None = None):
    """(dataset, test indices): the checkpoint's own test split, or, when the checkpoint was trained on
    another dataset of the family (a pooled module serving ``name``), ``name``'s own data and test
    split (from ``configs/completion_t64_<name>.yaml``) moved onto the checkpoint's layout."""
    import yaml

    from finetec.data import open_dataset
    from finetec.engine.evaluate import open_eval_data

    ds, _ = open_eval_data(info)
    split = info["config"]["data"]["test_split"]
    own = ROOT / "configs" / f"completion_t64_{name}.yaml"
    if name is not None and own.exists():
        data = yaml.safe_load(own.read_text())["data"]
        path = str((ROOT / data["path"]).resolve()) if not str(data["path"]).startswith("synthetic") \
            else data["path"]
        trained_on = str(info["config"]["data"]["path"])
        if Path(trained_on.split("?")[0]).name.split(".")[0] != Path(path.split("?")[0]).name.split(".")[0]:
            ds = open_dataset(path).to_layout(info.layout)
            split = data["test_split"]
    idx = ds.split_indices(split)
    if max_clips and len(idx) > max_clips:
        idx = np.unique(idx[np.linspace(0, len(idx) - 1, max_clips).round().astype(np.int64)])
    return ds, idx


def corrupted_batches(info: dict[str, Any], ds, idx, level: str, pattern: str, seed: int) -> list[dict]:
    """The test clips through the checkpoint's test pipeline at ``level`` / ``pattern`` (collated batches)."""
    from finetec.engine.evaluate import MultiClipDataset, make_loader

    pipe = info.test_pipeline(level, pattern, seed, ds.layout)
    return list(make_loader(MultiClipDataset(ds, idx, pipe, 1), 64, 0))


def occluded_batches(info: dict[str, Any], ds, idx, seed: int) -> list[dict] | None:
    """Real occlusion: each test clip keeps only the joints that another test clip's pose estimator
    saw (that clip's visibility flags, sampled to the same length), normalised from what is left.

    Donor of clip k: the next clip in a seeded permutation of the test clips (never the clip itself).
    Returns None when the data has no real missing joints.
    """
    from finetec.data.pipeline import collate, select_persons
    from finetec.data.transforms import apply_normalization, normalization_params, uniform_indices
    pipe = info.test_pipeline("clean", "random", seed, ds.layout)
    cfg, T = pipe.cfg, pipe.cfg.clip_len
    clips = []
    for i in idx:
        s = ds[int(i)]
        kp, mk = select_persons(s.keypoint, s.mask, pipe.num_persons)
        sel = uniform_indices(kp.shape[1], T, None)
        clips.append((kp[:, sel], mk[:, sel], int(i)))
    if all(m.reshape(m.shape[0], -1).any(1).sum() == m.reshape(m.shape[0], -1).all(1).sum() for _, m, _ in clips):
        return None  # every present person fully visible: no real occlusion to transplant
    order = np.random.default_rng(seed).permutation(len(clips))
    items = []
    for pos, k in enumerate(order):
        clean, cm, index = clips[k]
        for step in range(1, len(clips)):  # the next donor whose flags leave something observed
            donor = clips[order[(pos + step) % len(clips)]][1]
            m = cm & donor[:1]  # the donor's first person's flags on every person of the clip
            if (m.reshape(m.shape[0], -1).any(1) == cm.reshape(cm.shape[0], -1).any(1)).all():
                break
        x = np.where(m[..., None], clean, 0)
        if cfg.normalize:
            params = normalization_params(x, m, ds.layout, align_view=cfg.align_view)
            x = apply_normalization(x, m, params)
            gt = apply_normalization(clean, cm, params)
        else:
            gt = np.where(cm[..., None], clean, 0)
        items.append({"keypoint": x.astype(np.float32), "mask": m, "clean": gt.astype(np.float32),
                      "clean_mask": cm, "label": -1, "index": index})
    return [collate(items[a:a + 64]) for a in range(0, len(items), 64)]


def spearman(outputs: list[dict[str, torch.Tensor]], batches: list[dict]) -> float | None:
    """Rank correlation of the predicted expected error with the real error over the scored entries."""
    from scipy.stats import spearmanr

    if not outputs or "uncertainty" not in outputs[0]:
        return None
    pred, real = [], []
    for out, b in zip(outputs, batches):
        scored = (~b["mask"] & b["clean_mask"]).numpy()
        err = torch.linalg.vector_norm(out["completed"].float() - b["clean"], dim=-1).numpy()
        pred.append(out["uncertainty"].float().numpy()[scored])
        real.append(err[scored])
    p, r = np.concatenate(pred), np.concatenate(real)
    return float(spearmanr(p, r).statistic) if p.size > 2 else None


def ms_per_clip(model: nn.Module, batches: list[dict], n: int = 40) -> float:
    """Median CPU time (ms) of completing one clip (batch of one) on the current thread count: the
    cost on one core, not inflated by other processes sharing the machine."""
    times = []
    with torch.inference_mode():
        xs = [(b["keypoint"][i:i + 1], b["mask"][i:i + 1]) for b in batches for i in range(len(b["mask"]))][:n]
        model(*xs[0])
        for x, m in xs:
            t0 = time.process_time()
            model(x, m)
            times.append(time.process_time() - t0)
    return 1000.0 * float(np.median(times))


def measure(dataset: str, recipe: str, run: Path, seed: int, max_clips: int | None,
            levels: tuple[str, ...], patterns: tuple[str, ...], real: bool, machine: str, command: str,
            commit: str | None, linear_below: int | None = None, label: str | None = None) -> list[dict[str, Any]]:
    from finetec.data.fillers import FILLERS
    from finetec.engine.checkpoint import load_model
    from finetec.engine.evaluate import completion_errors

    model, info = load_model(run)
    model.eval()
    if linear_below is not None:  # an evaluation-only option of the module (training is unaffected)
        model.linear_below = int(linear_below)
    ds, idx = _test_data(info, max_clips, dataset)
    cfg_file = f"configs/{recipe}_{dataset}.yaml"
    if not (ROOT / cfg_file).exists():
        cfg_file = str(run / "config.yaml")
    rec = Recorder(model)
    methods: dict[str, nn.Module] = {**{m: FillerModel(m) for m in FILLERS}, "completion": rec}
    combos = [(lv, p) for lv in levels for p in patterns] + ([(REAL, REAL)] if real else [])
    rows, speed = [], None
    for level, pattern in combos:
        t0 = time.time()
        batches = occluded_batches(info, ds, idx, seed) if level == REAL else \
            corrupted_batches(info, ds, idx, level, pattern, seed)
        if batches is None:
            print(f"[{recipe} {dataset}] no real missing joints: no real-occlusion rows", flush=True)
            continue
        if speed is None:
            speed = ms_per_clip(model, batches)
        for m, net in methods.items():
            rec.outputs = []
            r = completion_errors(net, batches, torch.device("cpu"), "fp32")
            row = {"dataset": KEYS.get(dataset, dataset), "filler": m, "level": level, "pattern": pattern,
                   "seed": seed, "budget": label or recipe, **{k: r[k] for k in ("mpjpe", "n_mpjpe", "mpjve", "num_missing",
                                                                        "by_gap")},
                   "num_clips": int(len(idx)), "machine": machine, "command": command, "commit": commit,
                   "config_file": cfg_file, "source": SOURCE}
            if m == "completion":
                row.update(wall_s=_wall_s(run), ms_per_clip=speed, uncertainty_spearman=spearman(rec.outputs, batches),
                           checkpoint=str(run), epochs=info.get("epoch"),
                           linear_below=int(getattr(model, "linear_below", 0)))
            rows.append(row)
        lin = next(r for r in rows[-len(methods):] if r["filler"] == "linear")["mpjpe"]
        mod = rows[-1]
        print(f"[{label or recipe} {dataset}] {level:8s} {pattern:8s} linear {lin:.4f} completion {mod['mpjpe']:.4f} "
              f"({mod['mpjpe'] / lin:.2f}x) rho {mod['uncertainty_spearman']} ({time.time() - t0:.0f}s)", flush=True)
    return rows


# -- the Markdown page, generated from the records ----------------------------------------------
def _f(x: Any) -> str:
    return "-" if x is None or x != x else f"{x:.4f}"


def _ratio(a: Any, b: Any) -> str:
    return "-" if a is None or b is None or a != a or b != b or not b else f"{a / b:.2f}x"


def _pool(by_gap: dict, groups: tuple[str, ...]) -> float:
    n = sum(by_gap[g]["share"] for g in groups)  # shares are proportional to the counts
    return sum(by_gap[g]["mpjpe"] * by_gap[g]["share"] for g in groups if by_gap[g]["share"]) / n if n else float("nan")


def targets(rows: dict[tuple[str, str, str], dict]) -> list[str]:
    """The issue's targets at severe for one (dataset, recipe) group: ``rows[(filler, level, pattern)]``."""
    from finetec.metrics.restoration import GAP_GROUP_NAMES

    c, lin = rows.get(("completion", "severe", "random")), rows.get(("linear", "severe", "random"))
    if c is None or lin is None:
        return []
    out = []

    def line(name: str, value: float, limit: float) -> None:
        ok = value == value and value <= limit
        out.append(f"- {name}: {value:.2f} (target <= {limit:.2f}: {'met' if ok else '**not met**'})")

    cg, lg = c["by_gap"], lin["by_gap"]
    line("gaps of 8+ frames, completion / linear", _pool(cg, ("8-15", "16+")) / _pool(lg, ("8-15", "16+")), 0.7)
    line("edge gaps, completion / linear", cg["edge"]["mpjpe"] / lg["edge"]["mpjpe"], 0.7)
    for p in ("prefix", "suffix", "middle"):
        cp, lp = rows.get(("completion", "severe", p)), rows.get(("linear", "severe", p))
        if cp and lp:
            line(f"`{p}` pattern, completion / linear", cp["mpjpe"] / lp["mpjpe"], 0.6)
    line("all missing entries, completion / linear", c["mpjpe"] / lin["mpjpe"], 0.85)
    worst = max((cg[g]["mpjpe"] / lg[g]["mpjpe"], g) for g in GAP_GROUP_NAMES if lg[g]["share"])
    line(f"worst gap group ({worst[1]}), completion / linear", worst[0], 1.02)
    if c.get("ms_per_clip") is not None:
        line("ms per T=64 clip, one thread, batch of one", c["ms_per_clip"], 5.0)
    rho = c.get("uncertainty_spearman")
    if rho is not None:
        out.append(f"- confidence: Spearman(predicted error, real error) = {rho:.2f} "
                   f"(target >= 0.50: {'met' if rho >= 0.5 else '**not met**'})")
    return out


def markdown(records: list[dict[str, Any]]) -> str:
    from finetec.data.fillers import FILLERS
    from finetec.metrics.restoration import GAP_GROUP_NAMES

    mine = [r for r in records if r.get("source") == SOURCE]
    groups: dict[tuple[str, str, int], dict[tuple[str, str, str], dict]] = {}
    for r in mine:
        groups.setdefault((r["dataset"], r["budget"], r["seed"]), {})[(r["filler"], r["level"], r["pattern"])] = r
    lines = ["# Completion module vs gap fillers, by pattern and gap length", "",
             f"Generated from the `completion` records of `docs/results.json` by `{SOURCE} --report-only` "
             "(never edited by hand). Restoration error (MPJPE) on the entries missing after corruption but "
             "observed in the original clip, normalised coordinates (body scale 1); lower is better. Every "
             "method sees the identical corrupted test clips (fixed test corruption of the seed). Patterns: "
             "`random` frames, `periodic` frames, one hole at the start (`prefix`), end (`suffix`) or centre "
             "(`middle`); `real`: every test clip loses the joints another test clip's pose estimator did not "
             "see (its real visibility flags). Gap groups: length of the run of missing frames an entry sits in; "
             "`edge`: runs touching the first or last frame (extrapolation). `x lin`: completion / linear."]
    for (ds, recipe, seed), rows in sorted(groups.items()):
        c0 = next((r for r in rows.values() if r["filler"] == "completion"), None)
        lines += ["", f"## {TITLES.get(ds, ds)}: recipe `{recipe}`, seed {seed}", ""]
        if c0 is not None and c0.get("migrated_from"):
            lines += [f"Recovered from {c0['migrated_from']} (random pattern only; the checkpoints were not kept): "
                      f"`{c0.get('config_file')}` trained by `{c0.get('command')}`, best epoch {c0.get('epochs')}; "
                      f"{c0.get('num_clips')} test clips.", ""]
        elif c0 is not None:
            wall = c0.get("wall_s")
            lines += [f"Completion module: `{c0.get('config_file')}` (checkpoint `{c0.get('checkpoint')}`, best "
                      f"epoch {c0.get('epochs')}, training {'-' if wall is None else f'{wall / 60:.0f} min'}); "
                      f"{c0.get('num_clips')} test clips; machine {c0.get('machine')}; commit "
                      f"{c0.get('commit') or '-'}; command `{c0.get('command')}`.", ""]
        combos = sorted({(r["level"], r["pattern"]) for r in rows.values()},
                        key=lambda lp: ((*LEVELS, REAL).index(lp[0]), (*PATTERNS, REAL).index(lp[1])))
        fillers = [f for f in (*FILLERS, "completion") if any(k[0] == f for k in rows)]
        lines += ["| level | pattern | " + " | ".join(fillers) + " | x lin |", "|---|---|" + "---|" * (len(fillers) + 1)]
        for lv, p in combos:
            vals = [rows.get((f, lv, p), {}).get("mpjpe") for f in fillers]
            lin = rows.get(("linear", lv, p), {}).get("mpjpe")
            lines.append(f"| {lv} | {p} | " + " | ".join(_f(v) for v in vals) + f" | {_ratio(vals[-1], lin)} |")
        for lv, p in [("severe", "random"), (REAL, REAL)]:
            if ("linear", lv, p) not in rows:
                continue
            share = rows[("linear", lv, p)]["by_gap"]
            lines += ["", f"By gap length at {lv} / {p} (share of the missing entries in brackets):", "",
                      "| method | " + " | ".join(f"{g} ({share[g]['share']:.0%})" for g in GAP_GROUP_NAMES) + " |",
                      "|---|" + "---|" * len(GAP_GROUP_NAMES)]
            for f in ("linear", "cubic", "completion"):
                if (f, lv, p) in rows:
                    bg = rows[(f, lv, p)]["by_gap"]
                    lines.append(f"| {f} | " + " | ".join(_f(bg[g]["mpjpe"]) for g in GAP_GROUP_NAMES) + " |")
            if ("completion", lv, p) in rows:
                cb, lb = rows[("completion", lv, p)]["by_gap"], share
                lines.append("| x lin | " + " | ".join(_ratio(cb[g]["mpjpe"], lb[g]["mpjpe"]) for g in GAP_GROUP_NAMES)
                             + " |")
        t = targets(rows)
        if t:
            lines += ["", "Targets at severe:", ""] + t
        rhos = [(k[1], k[2], r["uncertainty_spearman"]) for k, r in rows.items()
                if k[0] == "completion" and r.get("uncertainty_spearman") is not None]
        if rhos:
            lines += ["", "Spearman rank correlation of the predicted error with the real error: "
                      + ", ".join(f"{lv}/{p} {rho:.2f}" for lv, p, rho in sorted(rhos)) + "."]
    return "\n".join(lines) + "\n"


def migrate_page(rev: str) -> list[dict[str, Any]]:
    """The rows of the completion page at git revision ``rev`` (written by the earlier version of this
    script: random pattern, every level, by-gap table at severe) as records with ``migrated_from``;
    their checkpoints were not kept. ``budget`` = ``completion_t64`` (configs/completion_t64_<dataset>.yaml)."""
    import re
    import subprocess

    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:docs/results_completion.md"], check=True,
                          capture_output=True, text=True).stdout
    head = re.search(r"command: `([^`]*)`", text)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    dataset, gaps = None, None
    for ln in text.splitlines():
        m = re.match(r"## (\S+) \((\d+) test clips; completion trained (\d+) epochs, best checkpoint at epoch (\d+)", ln)
        if m:
            dataset, n, epochs = KEYS.get(m.group(1), m.group(1)), int(m.group(2)), int(m.group(4))
            continue
        f = [x.strip().strip("*") for x in ln.strip().strip("|").split("|")]
        if dataset and len(f) == 6 and f[0] in LEVELS:
            rows[(dataset, f[1], f[0])] = {
                "dataset": dataset, "filler": f[1], "level": f[0], "pattern": "random", "seed": 0,
                "budget": "completion_t64", "mpjpe": float(f[2]), "n_mpjpe": float(f[3]), "mpjve": float(f[4]),
                "by_gap": None, "num_clips": n, "command": head.group(1) if head else None,
                "config_file": f"configs/completion_t64_{dataset.replace('_', '-')}.yaml",
                "source": SOURCE, "migrated_from": f"docs/results_completion.md at {rev}",
                **({"epochs": epochs} if f[1] == "completion" else {})}
        elif dataset and ln.startswith("| method | 1-3"):
            gaps = [c.split(" (")[0].strip() for c in f[1:]]
            shares = [float(c.split("(")[1].rstrip("%)")) / 100 for c in f[1:]]
        elif dataset and gaps and len(f) == len(gaps) + 1 and (dataset, f[0], "severe") in rows:
            rows[(dataset, f[0], "severe")]["by_gap"] = {
                g: {"mpjpe": float(v), "count": None, "share": sh} for g, v, sh in zip(gaps, f[1:], shares)}
    return list(rows.values())


def write_markdown(results: Path, md: Path) -> None:
    from finetec.benchmark.store import ResultsStore
    from finetec.fileio import write_text_atomic

    write_text_atomic(md, markdown(ResultsStore(results).completion))
    print(f"wrote {md}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["penn-action", "nw-ucla", "utd-mhad"], choices=sorted(KEYS))
    ap.add_argument("--recipes", nargs="+", default=["completion_t64_patterns"],
                    help="config name prefixes: configs/<recipe>_<dataset>.yaml")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="RECIPE:DATASET=DIR",
                    help="measure this finished completion run under the name RECIPE (repeatable)")
    ap.add_argument("--epochs", type=int, default=None, help="override the configs' optim.epochs")
    ap.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=PATTERNS)
    ap.add_argument("--no-real", action="store_true", help="skip the real-occlusion rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--linear-below", type=int, default=None, metavar="N",
                    help="set the module's evaluation-only option linear_below (short interior gaps take linear "
                         "interpolation) on the checkpoint before measuring")
    ap.add_argument("--label", default=None, help="the records' budget name (default: the recipe)")
    ap.add_argument("--out", default="runs", help="training runs go to OUT/<recipe>_<dataset>")
    ap.add_argument("--results", default=str(ROOT / "docs" / "results.json"))
    ap.add_argument("--md", default=str(ROOT / "docs" / "results_completion.md"))
    ap.add_argument("--max-clips", type=int, default=None, help="evaluate on this many test clips (evenly spaced)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="only regenerate --md from --results")
    ap.add_argument("--migrate", metavar="REV", default=None,
                    help="add the rows of docs/results_completion.md at git revision REV (an earlier page) "
                         "to --results, then regenerate --md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results, md = Path(args.results), Path(args.md)
    if args.migrate:
        from finetec.benchmark.store import ResultsStore

        ResultsStore(results).add_completion(migrate_page(args.migrate))
    if args.report_only or args.migrate:
        write_markdown(results, md)
        return 0
    from finetec.benchmark.engine_backend import code_version
    from finetec.benchmark.store import ResultsStore, commit_of

    jobs: list[tuple[str, str, Path | None]] = []
    for spec in args.checkpoint:
        head, _, path = spec.partition("=")
        recipe, _, name = head.partition(":")
        if not path or not recipe or not name:
            print(f"error: --checkpoint {spec!r}: expected RECIPE:DATASET=DIR", file=sys.stderr)
            return 2
        jobs.append((recipe, name, Path(path)))
    if not args.checkpoint:
        jobs = [(r, d, None) for d in args.datasets for r in args.recipes]
    machine = f"{platform.machine()} {platform.processor() or ''} CPU, {args.threads} thread(s)".replace("  ", " ")
    command = "python " + " ".join([SOURCE, *(argv if argv is not None else sys.argv[1:])])
    store = ResultsStore(results)
    for recipe, name, path in jobs:
        run = path if path else train_recipe(recipe, name, Path(args.out), args.epochs, args.threads)
        rows = measure(name, recipe, run, args.seed, args.max_clips, tuple(args.levels), tuple(args.patterns),
                       not args.no_real, machine, command, commit_of(code_version()), args.linear_below, args.label)
        store.add_completion(rows)
        write_markdown(results, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

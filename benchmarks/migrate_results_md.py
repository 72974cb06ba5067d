"""Recover the benchmark records of an older, Markdown-only ``docs/results.md`` into results.json form.

The earlier benchmark pages were generated from a ``runs/real/results.json`` that was not kept;
the page's *Provenance* table and completion tables still carry, per cell, the dataset, method,
regime, level, seed, budget, top-1, mean-class, test clips, training wall time, machine and
commit. This script reads them back (``git show REV:docs/results.md``) and merges them into a
results file (schema 2, ``docs/results_schema.md``), marking what was lost:

- top-1 / mean-class were printed in % with one decimal: the records hold that rounded value;
- ``wall_s`` was printed as ``12m34s`` / ``1h02m``: rounded to the second or the minute;
- ``pred`` (per-clip predictions), ``train_top1``, ``ids_sha1`` were never recorded: null;
- completion rows: ``by_gap`` was not on the page: null.

    python benchmarks/migrate_results_md.py --rev d839a1a --out docs/results.json
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from finetec.benchmark.spec import TITLES  # noqa: E402
from finetec.benchmark.store import ResultsStore, commit_of, upgrade_cell  # noqa: E402

FILLER = re.compile(r"\(`([a-z_]+)`\)")


def seconds(text: str) -> float | None:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or text.strip() == "-" or not m:
        return None
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return float(3600 * h + 60 * mi + s)


def pct(text: str) -> float | None:
    t = text.strip()
    return None if t in ("", "-") else round(float(t) / 100, 4)


def parse(text: str, source: str) -> tuple[list[dict], list[dict]]:
    cells, comp = [], []
    lines = text.splitlines()
    head = "| dataset | method | regime | level | top-1 | mean-class | top-5 | test clips | train wall time |"
    start = next(i for i, ln in enumerate(lines) if ln.startswith(head))
    for ln in lines[start + 2:]:
        if not ln.startswith("| "):
            break
        f = [x.strip() for x in ln.strip().strip("|").split(" | ")]
        ds, method, regime, level, top1, mc, top5, n, wall, seed, budget, cfg, machine, code, cmd = f[:15]
        cells.append(upgrade_cell({
            "dataset": ds, "method": method.strip("`"), "regime": regime, "budget": budget, "level": level,
            "seed": int(seed), "top1": pct(top1), "mean_class": pct(mc), "n_test": int(n), "wall_s": seconds(wall),
            "commit": commit_of(code), "machine": machine, "top5": pct(top5), "pattern": "random", "pred": None,
            "ids_sha1": None, "train_top1": None, "epochs": None, "config_file": cfg.strip("`"),
            "command": cmd.strip("`"), "code": None if code == "-" else code, "migrated_from": source}))
    by_title = {v: k for k, v in TITLES.items()}
    section = None
    levels: list[str] = []
    for ln in lines:
        m = re.match(r"### (.+) — budget `([^`]+)`, seed (\d+)$", ln)
        if m:
            section = (by_title.get(m.group(1), m.group(1)), m.group(2), int(m.group(3)))
            continue
        if ln.startswith("## ") and not ln.startswith("## Completion"):
            section = None
        if section and ln.startswith("| filler |"):
            levels = [c.split(":")[0].strip() for c in ln.strip().strip("|").split(" | ")[1:]]
            continue
        if section and ln.startswith("| ") and FILLER.search(ln.split(" | ")[0]):
            f = [x.strip() for x in ln.strip().strip("|").split(" | ")]
            filler = FILLER.search(f[0]).group(1)
            for lv, val in zip(levels, f[1:]):
                if not val:
                    continue
                mp, nmp, mv = (float(v.replace("*", "")) for v in val.split(" / "))
                comp.append({"dataset": section[0], "filler": filler, "level": lv, "pattern": "random",
                             "seed": section[2], "budget": section[1], "mpjpe": mp, "n_mpjpe": nmp, "mpjve": mv,
                             "by_gap": None, "migrated_from": source})
    return cells, comp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", required=True, help="git revision whose docs/results.md to read")
    ap.add_argument("--out", default="docs/results.json")
    args = ap.parse_args()
    text = subprocess.run(["git", "show", f"{args.rev}:docs/results.md"], capture_output=True, text=True,
                          check=True).stdout
    source = f"docs/results.md at {args.rev}"
    cells, comp = parse(text, source)
    store = ResultsStore(args.out)
    store.cells += [c for c in cells if not store.has_cell(**c)]
    store.completion += [r for r in comp if not store.has_completion(**r)]
    meta = store.meta
    for key, title in {**TITLES, "synthetic-coco17": "Synthetic (coco17)"}.items():
        meta.setdefault("datasets", {}).setdefault(key, {"title": title})
    note = (f"Cells of budget `cpu` were recovered from {source} (its results.json was not kept): top-1 and "
            "mean-class rounded to 0.1 %, wall times to the printed second or minute; per-clip predictions, "
            "final training accuracy and the completion errors by gap length were not recorded (null), so "
            "their intervals are t intervals over seeds.")
    old_notes = [ln[len("**Note.** "):] for ln in text.splitlines() if ln.startswith("**Note.** ")]
    meta["notes"] = list(dict.fromkeys([*meta.get("notes", []), note,
                                        *(f"(From the `cpu`-budget page.) {n}" for n in old_notes)]))
    store.save()
    print(f"{len(cells)} cells, {len(comp)} completion rows from {source} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

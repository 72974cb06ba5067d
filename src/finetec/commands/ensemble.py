"""``finetec ensemble``: fuse score files of several models or streams."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

HELP = "fuse score files (softmax, weighted sum) and report the accuracy of each and of the fusion"
DESCRIPTION = """Fuse the score files written by `finetec eval --save-scores` (e.g. joint and bone
streams, or several models). Each file's scores go through a softmax, then a weighted sum
(default weights 1). The files must hold the same clips (matched by id) with the same labels and
class names, scored on the same test set (corruption level, pattern and seed, data and split, as
each file records them); --allow-mismatch fuses anyway (on the clips all files share). A name
FILE.npz that `eval --level all --save-scores FILE.npz` expanded to FILE_<level>.npz is found
with --level. Prints top-1 / top-5 / mean-class accuracy of every input and of the fusion; --out
writes the fused scores with the weights and inputs recorded."""

# what a score file records about its test set (finetec eval --save-scores); fused files must agree
TEST_SET_KEYS = ("level", "pattern", "seed", "data", "split")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scores", nargs="+", help="score files (.npz with scores, label, id, class_names)")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per file (default: all 1)")
    p.add_argument("--out", help="write the fused scores (.npz; same keys plus weights and inputs)")
    p.add_argument("--level", default=None,
                   help="use FILE_<level>.npz for each FILE.npz that `eval --level all` split by level")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="fuse files scored on different test sets (level, pattern, seed, data, split) or with "
                        "different class names, on the clips they share")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def find_score_file(path: str, level: str | None = None) -> str:
    """``path`` itself, or ``<stem>_<level>.npz`` (what ``eval --level all`` writes) when ``level`` is
    given; a FinetecError saying exactly which files exist otherwise."""
    import glob
    import os.path

    from finetec.data.corruption import LEVELS
    from finetec.errors import FinetecError

    stem = path[:-4] if path.endswith(".npz") else path
    if level is not None:
        if level not in LEVELS:
            raise FinetecError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}", "--level")
        if os.path.exists(f"{stem}_{level}.npz"):
            return f"{stem}_{level}.npz"
    if os.path.exists(path):
        return path
    per_level = [f"{stem}_{lv}.npz" for lv in LEVELS if os.path.exists(f"{stem}_{lv}.npz")]
    if per_level:
        hint = (f"no {stem}_{level}.npz either; " if level is not None else "")
        raise FinetecError(f"no such score file; {hint}eval --level all wrote one file per level: "
                           f"{', '.join(per_level)}; name one, or pass --level LEVEL", path)
    others = sorted(glob.glob(os.path.join(glob.escape(os.path.dirname(path) or "."), "*.npz")))[:6]
    raise FinetecError("no such score file" + (f" (.npz files there: {', '.join(others)})" if others else ""), path)


def load_scores(path: str) -> dict[str, Any]:
    """Read and validate one score file."""
    import zipfile

    import numpy as np

    from finetec.errors import FinetecError

    if not os.path.exists(path):
        raise FinetecError("no such score file", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("scores", "label", "id", "class_names") if k not in z.files]
            if missing:
                raise FinetecError(f"not a score file (missing {', '.join(missing)})", path)
            d = {k: z[k] for k in ("scores", "label", "id", "class_names")}
            d["test_set"] = {k: z[k].item() for k in TEST_SET_KEYS if k in z.files and z[k].ndim == 0}
    except FinetecError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise FinetecError(f"cannot read score file ({type(e).__name__})", path) from None
    s = d["scores"]
    if s.ndim != 2 or len(d["label"]) != len(s) or len(d["id"]) != len(s) or s.shape[1] != len(d["class_names"]):
        raise FinetecError(f"inconsistent score file: scores {s.shape}, {len(d['label'])} labels, "
                           f"{len(d['id'])} ids, {len(d['class_names'])} class names", path)
    if not np.isfinite(s).all():
        raise FinetecError("scores contain NaN or Inf", path)
    d["id"] = d["id"].astype(str)
    d["label"] = d["label"].astype(np.int64)
    if len(set(d["id"].tolist())) != len(d["id"]):
        raise FinetecError("clip ids are not unique", path)
    return d


def check_same_test_set(files: list[dict[str, Any]], names: list[str], allow: bool = False) -> list[str]:
    """Refuse (or, with ``allow``, describe) score files recorded on different test sets or with
    different class names; returns the differences found, one line each."""
    from finetec.errors import FinetecError

    found = []
    for key in TEST_SET_KEYS:
        values = {n: d["test_set"][key] for d, n in zip(files, names) if key in d.get("test_set", {})}
        if len({str(v) for v in values.values()}) > 1:
            found.append(f"{key} differs: " + ", ".join(f"{n} {v}" for n, v in values.items()))
    if any(list(d["class_names"]) != list(files[0]["class_names"]) for d in files[1:]):
        sizes = {len(d["class_names"]) for d in files}
        if len(sizes) > 1:
            raise FinetecError("the score files have different numbers of classes ("
                               + ", ".join(f"{n} {len(d['class_names'])}" for d, n in zip(files, names)) + ")")
        found.append(f"class names differ from {names[0]}'s")
    if found and not allow:
        raise FinetecError("will not fuse scores of different test sets or class lists: " + "; ".join(found)
                           + " (pass --allow-mismatch to fuse anyway)")
    return found


def fuse(files: list[dict[str, Any]], names: list[str], weights: list[float], allow_mismatch: bool = False
         ) -> dict[str, Any]:
    """Align every file to the first one's clip order and return the fused probabilities. With
    ``allow_mismatch`` the clips all files share are fused and class names may differ (the first
    file's are kept)."""
    import numpy as np

    from finetec.errors import FinetecError
    from finetec.metrics.classification import softmax

    ref = dict(files[0])
    shared = set(ref["id"].tolist())
    for d in files[1:]:
        shared &= set(d["id"].tolist())
    if allow_mismatch and len(shared) < len(ref["id"]):
        if not shared:
            raise FinetecError("the score files share no clip id")
        keep = np.array([c in shared for c in ref["id"].tolist()])
        ref = {**ref, "scores": ref["scores"][keep], "label": ref["label"][keep], "id": ref["id"][keep]}
    order0 = {cid: i for i, cid in enumerate(ref["id"].tolist())}
    fused = np.zeros(ref["scores"].shape, dtype=np.float64)
    aligned = []
    for d, name, w in zip(files, names, weights):
        if list(d["class_names"]) != list(ref["class_names"]) and not allow_mismatch:
            raise FinetecError(f"class names differ from {names[0]}", name)
        ids = d["id"].tolist()
        if set(ids) != set(order0):
            if not allow_mismatch:
                only = sorted(set(ids) ^ set(order0))
                raise FinetecError(f"holds different clips than {names[0]} ({len(only)} ids differ, e.g. "
                                   f"{only[0]!r}; pass --allow-mismatch to fuse the shared clips)", name)
            rows = np.array([i for i, c in enumerate(ids) if c in order0])
            d = {**d, "scores": d["scores"][rows], "label": d["label"][rows], "id": d["id"][rows]}
        pos = np.array([order0[c] for c in d["id"].tolist()])
        inv = np.empty_like(pos)
        inv[pos] = np.arange(len(pos))
        label = d["label"][inv]
        if not np.array_equal(label, ref["label"]):
            k = int(np.flatnonzero(label != ref["label"])[0])
            raise FinetecError(f"labels disagree with {names[0]} (clip {ref['id'][k]!r})", name)
        d = {**d, "scores": d["scores"][inv], "id": ref["id"], "label": ref["label"]}
        aligned.append(d)
        fused += w * softmax(d["scores"], axis=1)
    return {"scores": fused, "label": ref["label"], "id": ref["id"], "class_names": ref["class_names"],
            "inputs": aligned}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from finetec.errors import FinetecError
    from finetec.fileio import atomic_path
    from finetec.metrics.classification import mean_class_accuracy, topk_accuracy

    weights = args.weights if args.weights is not None else [1.0] * len(args.scores)
    if len(weights) != len(args.scores):
        raise FinetecError(f"{len(weights)} weights for {len(args.scores)} score files", "--weights")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise FinetecError("weights must be >= 0 and not all 0", "--weights")
    paths = [find_score_file(p, args.level) for p in args.scores]
    files = [load_scores(p) for p in paths]
    if args.level is not None:
        for p, d in zip(paths, files):
            recorded = d["test_set"].get("level")
            if recorded is not None and recorded != args.level and not args.allow_mismatch:
                raise FinetecError(f"holds scores at level {recorded}, not {args.level} "
                                   "(pass --allow-mismatch to fuse anyway)", p)
    mismatches = check_same_test_set(files, paths, args.allow_mismatch)
    for line in mismatches:
        print(f"finetec ensemble: warning: {line} (fused as asked by --allow-mismatch)", file=sys.stderr)
    fused = fuse(files, paths, weights, args.allow_mismatch)
    files = fused.pop("inputs")
    K = len(fused["class_names"])
    labelled = fused["label"] >= 0

    def acc(scores: np.ndarray) -> dict[str, float]:
        s, lab = scores[labelled], fused["label"][labelled]
        if not len(lab):
            return {"top1": float("nan"), "top5": float("nan"), "mean_class": float("nan")}
        return {"top1": topk_accuracy(s, lab, 1), "top5": topk_accuracy(s, lab, 5),
                "mean_class": mean_class_accuracy(lab, s.argmax(1), K)}

    inputs = [{"file": p, "weight": w, **acc(d["scores"]), **d["test_set"]}
              for p, w, d in zip(paths, weights, files)]
    result = {"inputs": inputs, "fused": acc(fused["scores"]), "weights": list(weights),
              "num_clips": int(len(fused["label"])), "out": args.out}
    if mismatches:
        result["mismatches"] = mismatches
    if args.out:
        with atomic_path(args.out, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, scores=fused["scores"].astype(np.float32), label=fused["label"], id=fused["id"],
                         class_names=np.asarray(fused["class_names"], dtype=str),
                         weights=np.asarray(weights, dtype=np.float64),
                         inputs=np.asarray(paths, dtype=str), fusion=np.asarray("softmax-weighted-sum"),
                         **{k: np.asarray(v) for k, v in files[0]["test_set"].items() if not mismatches})
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{len(fused['label'])} clips, {K} classes; fusion = weighted sum of softmax scores")
    print(f"{'input':<40} {'weight':>7} {'top-1':>7} {'top-5':>7} {'mean-class acc':>15}")
    for r in inputs:
        name = r["file"] if len(r["file"]) <= 40 else "..." + r["file"][-37:]
        print(f"{name:<40} {r['weight']:7.3g} {r['top1']:7.4f} {r['top5']:7.4f} {r['mean_class']:15.4f}")
    f = result["fused"]
    print(f"{'fused':<40} {'':>7} {f['top1']:7.4f} {f['top5']:7.4f} {f['mean_class']:15.4f}")
    if args.out:
        print(f"wrote {args.out}")
    return 0

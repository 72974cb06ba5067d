"""``finetec ensemble``: fuse score files of several models or streams."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

HELP = "fuse score files (softmax, weighted sum) and report the accuracy of each and of the fusion"
DESCRIPTION = """Fuse the score files written by `finetec eval --save-scores` (e.g. joint and bone
streams, or several models). Each file's scores go through a softmax, then a weighted sum
(default weights 1). The files must hold the same clips (matched by id) with the same labels and
class names. Prints top-1 / top-5 / mean-class accuracy of every input and of the fusion; --out
writes the fused scores with the weights and inputs recorded."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scores", nargs="+", help="score files (.npz with scores, label, id, class_names)")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per file (default: all 1)")
    p.add_argument("--out", help="write the fused scores (.npz; same keys plus weights and inputs)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


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


def fuse(files: list[dict[str, Any]], names: list[str], weights: list[float]) -> dict[str, Any]:
    """Align every file to the first one's clip order and return the fused probabilities."""
    import numpy as np

    from finetec.errors import FinetecError
    from finetec.metrics.classification import softmax

    ref = files[0]
    order0 = {cid: i for i, cid in enumerate(ref["id"].tolist())}
    fused = np.zeros(ref["scores"].shape, dtype=np.float64)
    for d, name, w in zip(files, names, weights):
        if list(d["class_names"]) != list(ref["class_names"]):
            raise FinetecError(f"class names differ from {names[0]}", name)
        if set(d["id"].tolist()) != set(order0):
            only = sorted(set(d["id"].tolist()) ^ set(order0))
            raise FinetecError(f"holds different clips than {names[0]} ({len(only)} ids differ, e.g. {only[0]!r})",
                               name)
        pos = np.array([order0[c] for c in d["id"].tolist()])
        inv = np.empty_like(pos)
        inv[pos] = np.arange(len(pos))
        label = d["label"][inv]
        if not np.array_equal(label, ref["label"]):
            k = int(np.flatnonzero(label != ref["label"])[0])
            raise FinetecError(f"labels disagree with {names[0]} (clip {ref['id'][k]!r})", name)
        d["scores"] = d["scores"][inv]
        d["id"], d["label"] = ref["id"], ref["label"]
        fused += w * softmax(d["scores"], axis=1)
    return {"scores": fused, "label": ref["label"], "id": ref["id"], "class_names": ref["class_names"]}


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
    files = [load_scores(p) for p in args.scores]
    fused = fuse(files, list(args.scores), weights)
    K = len(fused["class_names"])
    labelled = fused["label"] >= 0

    def acc(scores: np.ndarray) -> dict[str, float]:
        s, lab = scores[labelled], fused["label"][labelled]
        if not len(lab):
            return {"top1": float("nan"), "top5": float("nan"), "mean_class": float("nan")}
        return {"top1": topk_accuracy(s, lab, 1), "top5": topk_accuracy(s, lab, 5),
                "mean_class": mean_class_accuracy(lab, s.argmax(1), K)}

    inputs = [{"file": p, "weight": w, **acc(d["scores"])} for p, w, d in zip(args.scores, weights, files)]
    result = {"inputs": inputs, "fused": acc(fused["scores"]), "weights": list(weights),
              "num_clips": int(len(fused["label"])), "out": args.out}
    if args.out:
        with atomic_path(args.out, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, scores=fused["scores"].astype(np.float32), label=fused["label"], id=fused["id"],
                         class_names=np.asarray(fused["class_names"], dtype=str),
                         weights=np.asarray(weights, dtype=np.float64),
                         inputs=np.asarray(list(args.scores), dtype=str), fusion=np.asarray("softmax-weighted-sum"))
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

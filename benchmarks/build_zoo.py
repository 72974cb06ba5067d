"""Add a trained checkpoint to the model zoo, measure it, and write its model card.

    python benchmarks/build_zoo.py add penn-action-stgcnpp RUN/best --data ../shared/data/penn_action \
        --trained-with "finetec benchmark --data ../shared/data/penn_action ..." --alias penn-action
    python benchmarks/build_zoo.py cards        # rewrite docs/models/*.md from src/finetec/zoo/models.json

``add`` copies ``model.safetensors`` and ``checkpoint.json`` (without the path of the training
data on the machine that trained it) into ``src/finetec/zoo/NAME/``, records their SHA-256 and
size in ``src/finetec/zoo/models.json``, then runs ``finetec eval --model NAME --data DATA
--level all`` and stores what it prints (the card's accuracy table is that output, verbatim) and
writes the card. ``cards`` only rewrites the cards (``tests/test_zoo.py`` checks that they match
the registry). The dataset facts (citation, licence, split) are in ``DATASETS`` below.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "src" / "finetec" / "zoo"
REGISTRY = ZOO / "models.json"
CARDS = ROOT / "docs" / "models"

LICENCE = ("non-commercial research use only: trained on {dataset}, which its authors release for "
           "non-commercial research; the weights carry the same terms (the finetec code is Apache-2.0, "
           "the weights are not)")

DATASETS = {
    "penn_action": {
        "name": "Penn Action",
        "citation": "Zhang, Zhu, Derpanis, \"From Actemes to Action: A Strongly-supervised Representation for "
                    "Detailed Action Understanding\", ICCV 2013",
        "what": "2326 sports and exercise clips from the web (30 fps), 13 annotated 2D joints per frame in image "
                "pixels with a per-joint visibility flag, one person, 15 classes",
        "split": "the official split (`train` flag of each clip): 1258 training clips (of which 10 % are held "
                 "out to select the epoch), 1068 test clips",
        "input_note": "Penn Action names left and right from the viewer's side (its `left_shoulder` is the "
                      "person's right shoulder; `tests/test_joint_maps.py` measures it), so the maps from "
                      "COCO-17, OpenPose-18 and MediaPipe-33 swap the sides; nothing to do on your part.",
        "not_for": [
            "actions outside its 15 sports and exercise classes: it always answers one of them, however "
            "unlike the input is (there is no 'none of these' class)",
            "several people, or a person seen only in part for most of the clip: it was trained on one "
            "whole annotated body per clip",
            "Penn Action's annotations are hand-placed joints; a pose estimator's joints are noisier, so "
            "expect lower accuracy on your own clips than the test numbers here",
        ],
    },
    "utd_mhad": {
        "name": "UTD-MHAD",
        "citation": "Chen, Jafari, Kehtarnavaz, \"UTD-MHAD: A Multimodal Dataset for Human Action Recognition "
                    "Utilizing a Depth Camera and a Wearable Inertial Sensor\", ICIP 2015",
        "what": "861 clips of 27 actions by 8 subjects, Kinect v1 skeletons (20 joints, 3D, metres), 30 fps",
        "split": "cross-subject: subjects 1, 3, 5, 7 train (10 % of them held out to select the epoch), "
                 "2, 4, 6, 8 test",
        "not_for": [
            "actions outside its 27 classes (it always answers one of them)",
            "8 subjects facing one Kinect v1 in one room: other cameras, views and people are outside what "
            "it has seen",
            "2D input: it needs 3D coordinates (x, y, z in metres)",
        ],
    },
    "nw_ucla": {
        "name": "NW-UCLA",
        "citation": "Wang, Nie, Xia, Wu, Zhu, \"Cross-view Action Modeling, Learning and Recognition\", CVPR 2014",
        "what": "1484 clips of 10 daily actions, Kinect v1 skeletons (20 joints, 3D, metres), three views",
        "split": "cross-view: views 1 and 2 train (10 % held out to select the epoch), view 3 test",
        "not_for": [
            "actions outside its 10 coarse daily classes (it always answers one of them)",
            "fine-grained distinctions: its classes are coarse (pick up, walk, sit down, ...)",
            "2D input: it needs 3D coordinates (x, y, z in metres)",
        ],
    },
}


# what the zoo does not hold, and why (shown on docs/models/README.md)
NOT_SHIPPED = [
    "FineTec for NW-UCLA and UTD-MHAD: the two-stage training (completion module, then recognizer) was "
    "not run for them in this release.",
]


def load_registry() -> dict:
    if REGISTRY.exists():
        return json.loads(REGISTRY.read_text(encoding="utf-8"))
    return {"models": {}}


def save_registry(reg: dict) -> None:
    reg["models"] = dict(sorted(reg["models"].items()))
    REGISTRY.write_text(json.dumps(reg, indent=1) + "\n", encoding="utf-8")
    from finetec import zoo

    zoo._load_registry.cache_clear()


def finetec(*argv: str) -> str:
    """Run a finetec command in this process; its stdout (FinetecError / non-zero exit: stop)."""
    from finetec.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(list(argv))
    if rc != 0:
        raise SystemExit(f"finetec {' '.join(argv)} failed with exit code {rc}")
    return buf.getvalue()


def compact_banks(src: Path, dst: Path, info: dict) -> None:
    """Copy the weights, keeping of a completion module's skeleton bank only the rows it filled
    (``bank_count``; the rest are zeros never read) and recording the smaller capacity as the
    module's ``bank_size`` in ``info`` (the model built from it is the same model; a bank buffer
    is sized by ``bank_size``)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(src))
    cfg = info.get("model_config") or {}
    for key in [k for k in tensors if k.endswith("bank") and k + "_count" in tensors]:
        n = max(1, int(tensors[key + "_count"]))
        if n < tensors[key].shape[0]:
            tensors[key] = tensors[key][:n].contiguous()
            (cfg["completion_config"] if key == "completion.bank" else cfg)["bank_size"] = n
    save_file(tensors, str(dst), metadata=metadata)


def add(args: argparse.Namespace) -> None:
    from finetec.engine.checkpoint import INFO, WEIGHTS, read_info
    from finetec.fileio import sha256_file as sha256

    src = Path(args.checkpoint)
    if (src / "best" / INFO).exists():
        src = src / "best"
    read_info(src)   # the checks of a checkpoint.json; the file itself is copied as it is
    info = json.loads((src / INFO).read_text(encoding="utf-8"))
    dataset_key = args.dataset
    facts = DATASETS[dataset_key]
    # the training data's location on the machine that trained it means nothing elsewhere
    data_cfg = (info.get("config") or {}).get("data") or {}
    if "path" in data_cfg:
        data_cfg["path"] = None
    # a local path of the training machine (stage 1 of a FineTec run) means nothing elsewhere either
    if (info.get("config") or {}).get("model", {}).get("completion_checkpoint"):
        info["config"]["model"]["completion_checkpoint"] = None
    out = ZOO / args.name
    out.mkdir(parents=True, exist_ok=True)
    compact_banks(src / WEIGHTS, out / WEIGHTS, info)
    (out / INFO).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    files = {f: {"sha256": sha256(out / f), "bytes": (out / f).stat().st_size} for f in (WEIGHTS, INFO)}
    layout = info["layout"]
    cfg = info.get("config") or {}
    pipe = cfg.get("pipeline") or {}
    reg = load_registry()
    for other in reg["models"].values():   # an alias names one model
        other["aliases"] = [a for a in other.get("aliases", []) if a not in args.alias]
    reg["models"][args.name] = {
        "aliases": list(args.alias),
        "dataset": facts["name"],
        "method": args.method,
        "description": args.description or "",
        "layout": layout["name"] if isinstance(layout, dict) else str(layout),
        "dim": int((info.get("dims") or {}).get("coords") or 0),
        "clip_len": int(info.get("clip_len") or pipe.get("clip_len")),
        "classes": info["class_names"],
        "files": files,
        "top1": {},
        "evaluation": {},
        "trained_with": args.trained_with,
        "card": f"docs/models/{args.name}.md",
        "licence": LICENCE.format(dataset=facts["name"]),
        "dataset_key": dataset_key,
    }
    save_registry(reg)
    # measure: exactly the command recorded in the card
    shown = ["finetec", "eval", "--model", args.name, "--data", args.data_shown or args.data, "--level", "all"]
    text = finetec("eval", "--model", args.name, "--data", args.data, "--level", "all", "--device", "cpu")
    rows = [ln.split() for ln in text.splitlines() if ln.split()[:1] and ln.split()[0] in ("clean", "minor",
                                                                                          "moderate", "severe")]
    top1 = {r[0]: float(r[3]) for r in rows}
    clips = int(rows[0][2])
    printed = [ln.replace(args.data, args.data_shown) if args.data_shown else ln for ln in text.splitlines()]
    reg = load_registry()
    reg["models"][args.name]["top1"] = top1
    reg["models"][args.name]["evaluation"] = {"command": " ".join(shown), "split": "test", "clips": clips,
                                              "seed": 0, "printed": printed}
    save_registry(reg)
    cards()
    print(f"added {args.name}: top-1 {top1}; card {CARDS / (args.name + '.md')}")


def _model_text(model: dict) -> str:
    """The architecture in words, from the training config's ``model`` section."""
    if model.get("name") == "finetec":
        b = model.get("backbone_overrides") or {}
        return (f"Model `finetec`: the completion module of stage 1 (trained first by the same command, then "
                f"frozen), the five-region decomposition, Lagrangian acceleration estimation (hidden width "
                f"{model.get('physics_hidden')}) and a `{model.get('backbone')}` backbone (width "
                f"{b.get('base_channels')}, {b.get('num_stages')} blocks, dropout {b.get('dropout')})")
    return (f"Model `{model.get('name')}` (width {model.get('base_channels')}, {model.get('num_stages')} blocks, "
            f"dropout {model.get('dropout')})")


def card_text(name: str, m: dict) -> str:
    facts = DATASETS[m["dataset_key"]]
    info = json.loads((ZOO / name / "checkpoint.json").read_text(encoding="utf-8"))
    cfg = info.get("config") or {}
    pipe, optim, model = cfg.get("pipeline") or {}, cfg.get("optim") or {}, cfg.get("model") or {}
    from finetec.layouts import layouts_mapping_onto

    accepts = layouts_mapping_onto(m["layout"])
    size = sum(f["bytes"] for f in m["files"].values())
    aliases = f" (alias: {', '.join(m['aliases'])})" if m.get("aliases") else ""
    ev = m["evaluation"]
    L = [f"# Model card: `{name}`{aliases}", ""]
    L += [f"{m['method']} trained on {facts['name']} ({m['dim']}D skeletons, layout `{m['layout']}`, "
          f"{len(m['classes'])} classes), shipped with finetec ({size / 1e6:.2f} MB).", ""]
    if m.get("description"):
        L += [m["description"], ""]
    L += ["## Use", "", "```bash",
          f"finetec predict --model {name} clip.json --top-k 3",
          f"finetec stream --model {name} < frames.jsonl" + next(
              (f"   # --layout {a} for {what} frames" for a, what in (("coco17", "COCO-17"), ("ntu25", "Kinect v2"))
               if a in accepts), ""),
          *([f"finetec complete --model {name} clip.json completed.json   # fills the missing frames and joints "
             "with its completion module"] if model.get("name") == "finetec" else []),
          "```", "", "```python", "import finetec", f'model = finetec.load("{name}")',
          "model.predict(keypoint)   # (T, V, C) in this layout, NaN = missing joint", "```", "",
          f"Input: clips in layout `{m['layout']}` ({m['dim']}D)"
          + (f", or in {', '.join(f'`{a}`' for a in accepts)} through their joint maps "
             "(a joint the map cannot supply is missing, never a zero; see "
             "[docs/layouts.md](../layouts.md#joint-maps))" if accepts else "")
          + f". Each clip is resampled to {m['clip_len']} frames as a whole; missing frames and joints are "
          + ("masked and filled by the model's completion module" if (cfg.get("model") or {}).get("name") == "finetec"
             else f"masked and filled by the model's gap filler (`{pipe.get('filler')}`)")
          + ". The training clips show the "
          "action once or a few times (one repetition of an exercise), so give it a clip of one action, not "
          "a long recording (for that, `finetec stream` classifies a sliding window).", ""]
    if facts.get("input_note"):
        L += [facts["input_note"], ""]
    L += ["## Classes", "", ", ".join(f"`{c}`" for c in m["classes"]), ""]
    L += ["## Training data and licence", "",
          f"{facts['name']}: {facts['what']}. Cite {facts['citation']}.", "",
          f"Split: {facts['split']}.", "",
          f"**Licence of the weights: {m['licence']}.**", ""]
    L += ["## How it was trained", "", "```bash", m["trained_with"], "```", "",
          f"The `standard` budget of `finetec benchmark` in the mixed regime: each training clip is "
          f"corrupted at a level drawn from {', '.join(pipe.get('mixed_levels') or [])} (0 / 25 / 50 / 75 % of "
          f"the frames lost), so one model serves every level. {_model_text(model)}; "
          f"clip length {pipe.get('clip_len')}; features {', '.join(pipe.get('features') or [])}; "
          f"gap filler `{pipe.get('filler')}`; {optim.get('name')}{' with Nesterov momentum' if optim.get('nesterov') else ''}, lr "
          f"{optim.get('lr')}, batch {optim.get('batch_size')}, {optim.get('epochs')} epochs, label smoothing "
          f"{optim.get('label_smoothing')}; seed {cfg.get('seed')}. The epoch kept is the best by "
          f"{info.get('selection') or 'validation top-1'} (epoch {info.get('epoch')}). The full configuration "
          f"is the `config` of [checkpoint.json](../../src/finetec/zoo/{name}/checkpoint.json).", ""]
    L += ["## Accuracy on the test split", "",
          "Top-1 by corruption level (fixed corrupted test sets, random loss pattern, test seed 0), "
          "exactly as this command prints it:", "", "```bash", ev["command"], "```", "", "```"]
    L += ev["printed"] + ["```", ""]
    L += ["| level | frames lost | top-1 |", "|---|---|---|"]
    lost = {"clean": "0 %", "minor": "25 %", "moderate": "50 %", "severe": "75 %"}
    L += [f"| {lv} | {lost[lv]} | {100 * m['top1'][lv]:.2f} % |" for lv in ("clean", "minor", "moderate", "severe")
          if lv in m["top1"]]
    L += ["", "## What it is not for", ""]
    L += [f"- {x}" for x in facts["not_for"]]
    L += ["- anything but research: no commercial use (the licence above), and no decision about a person "
          "(health, safety, surveillance, access) rests on it", ""]
    L += ["## Files", "", "| file | bytes | SHA-256 |", "|---|---|---|"]
    L += [f"| `src/finetec/zoo/{name}/{f}` | {r['bytes']} | `{r['sha256']}` |" for f, r in m["files"].items()]
    L += ["", "finetec checks both checksums every time the model is loaded and refuses an altered file.", ""]
    return "\n".join(L)


def write_card(name: str, m: dict) -> None:
    CARDS.mkdir(parents=True, exist_ok=True)
    (CARDS / f"{name}.md").write_text(card_text(name, m), encoding="utf-8")


def index_text(reg: dict) -> str:
    """docs/models/README.md: every shipped model in one table, from the registry."""
    models = reg["models"]
    total = sum(f["bytes"] for m in models.values() for f in m["files"].values())
    other = sorted(n for n, m in models.items() if "--budget standard" not in m["trained_with"])
    except_ = (f" (except {', '.join(f'`{n}`' for n in other)}: its card says how it was trained)" if other else "")
    L = ["# Pretrained models", "",
         "Shipped with the package (`src/finetec/zoo/`, listed by `finetec models`), used by name: "
         "`finetec predict --model NAME clip.json`, `finetec.load(NAME)`, and `--model NAME` on `complete`, "
         "`stream` and `eval`. Each file's SHA-256 is checked when the model loads. All are trained with the "
         "`standard` budget of `finetec benchmark` in the mixed regime (one model for every corruption level)"
         f"{except_}. Total size: {total} bytes ({total / 1e6:.1f} MB) in {len(models)} model(s).", "",
         "**The weights are for non-commercial research only**, like the datasets they are trained on "
         "(each card names its dataset and citation).", "",
         "Top-1 (%) on the dataset's test split by corruption level (0 / 25 / 50 / 75 % of the frames lost), "
         "as `finetec eval --model NAME --data DATASET --level all` prints it (the command and its whole output "
         "are in each card):", "",
         "| name | alias | dataset | method | layout | accepts through joint maps | classes | size | clean | minor "
         "| moderate | severe |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    from finetec.layouts import layouts_mapping_onto

    for name, m in models.items():
        size = sum(f["bytes"] for f in m["files"].values())
        acc = " | ".join(f"{100 * m['top1'][lv]:.2f}" for lv in ("clean", "minor", "moderate", "severe"))
        L.append(f"| [`{name}`]({name}.md) | {', '.join(f'`{a}`' for a in m.get('aliases', [])) or '-'} | "
                 f"{m['dataset']} | {m['method']} | `{m['layout']}` ({m['dim']}D) | "
                 f"{', '.join(f'`{a}`' for a in layouts_mapping_onto(m['layout'])) or '-'} | {len(m['classes'])} | "
                 f"{size / 1e6:.2f} MB | {acc} |")
    L += ["", "Not shipped:", ""] + [f"- {x}" for x in NOT_SHIPPED]
    L += ["", "Adding a model: `python benchmarks/build_zoo.py add NAME RUN_FOLDER --dataset KEY --data DATA "
          "--method TEXT --trained-with COMMAND` copies the checkpoint into the package, records the "
          "checksums, runs the evaluation and writes the card; `python benchmarks/build_zoo.py cards` "
          "rewrites the cards and this page from `src/finetec/zoo/models.json`.", ""]
    return "\n".join(L)


def cards(args: argparse.Namespace | None = None) -> None:
    reg = load_registry()
    for name, m in reg["models"].items():
        write_card(name, m)
        print(f"wrote {CARDS / (name + '.md')}")
    (CARDS / "README.md").write_text(index_text(reg), encoding="utf-8")
    print(f"wrote {CARDS / 'README.md'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="add (or replace) a model and measure it")
    a.add_argument("name")
    a.add_argument("checkpoint", help="the trained checkpoint folder (or run folder: its best/)")
    a.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    a.add_argument("--data", required=True, help="the dataset to evaluate on (its test split)")
    a.add_argument("--data-shown", default=None, help="how the card writes --data (e.g. ../shared/data/penn_action)")
    a.add_argument("--method", required=True, help="e.g. 'ST-GCN++ + linear gap filling'")
    a.add_argument("--trained-with", required=True, help="the command that trained it")
    a.add_argument("--alias", action="append", default=[])
    a.add_argument("--description", default=None)
    a.set_defaults(func=add)
    c = sub.add_parser("cards", help="rewrite docs/models/*.md from the registry")
    c.set_defaults(func=cards)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()

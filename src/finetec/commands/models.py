"""``finetec models``: the pretrained models shipped with finetec."""
from __future__ import annotations

import argparse
import json

HELP = "list the pretrained models (use one with --model NAME or finetec.load(NAME))"
DESCRIPTION = (
    "List the pretrained models shipped with finetec: name, dataset, skeleton layout (and the "
    "layouts accepted through joint maps), coordinates, classes, size on disk and top-1 accuracy "
    "on the dataset's test split per corruption level (clean / minor / moderate / severe = 0 / 25 "
    "/ 50 / 75 %% of the frames lost), as `finetec eval --model NAME --data DATASET --level all` "
    "prints it. With NAME, everything about one model: classes, files and checksums, how it was "
    "trained and evaluated, its model card. The weights are trained on datasets released for "
    "non-commercial research and carry the same terms (see the model cards in docs/models/)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="one model (or alias) to describe")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--verify", action="store_true", help="also check every file's SHA-256 checksum")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def run(args: argparse.Namespace) -> int:
    from finetec import zoo
    from finetec.layouts import layouts_mapping_onto

    models = [zoo.get(args.name)] if args.name else [zoo.registry()[n] for n in zoo.names()]
    if args.verify:
        for m in models:
            zoo.verify(m)
    if args.json:
        out = {m.name: {**m.to_dict(), "size_bytes": m.size_bytes, "accepts": layouts_mapping_onto(m.layout)}
               for m in models}
        print(json.dumps(out if not args.name else out[models[0].name]))
        return 0
    if args.name:
        _describe(models[0], layouts_mapping_onto(models[0].layout), verified=args.verify)
        return 0
    if not models:
        print("no pretrained models are shipped with this installation")
        return 0
    head = f"{'name':<22} {'dataset':<12} {'layout':<11} {'dim':>3} {'classes':>7} {'size':>8}  " \
           f"{'top-1 % clean / minor / moderate / severe':<41} method"
    print(head)
    for m in models:
        acc = " / ".join(f"{100 * m.top1[lv]:.2f}" if lv in m.top1 else "-" for lv in zoo.LEVELS)
        print(f"{m.name:<22} {m.dataset:<12} {m.layout:<11} {m.dim:>2}D {len(m.classes):>7} "
              f"{_size(m.size_bytes):>8}  {acc:<41} {m.method}")
    al = zoo.aliases()
    if al:
        print("aliases: " + ", ".join(f"{a} = {n}" for a, n in sorted(al.items())))
    maps = sorted({m.layout for m in models})
    print("other skeletons accepted through joint maps: "
          + "; ".join(f"{lay} <- {', '.join(layouts_mapping_onto(lay)) or 'none'}" for lay in maps))
    print("top-1: test split, `finetec eval --model NAME --data DATASET --level all`; "
          "details: finetec models NAME; licence: non-commercial research (docs/models/)")
    return 0


def _describe(m, accepts: list[str], verified: bool) -> None:
    from finetec import zoo

    al = [a for a, n in zoo.aliases().items() if n == m.name]
    print(f"{m.name}" + (f" (alias: {', '.join(al)})" if al else ""))
    if m.description:
        print(f"  {m.description}")
    print(f"  dataset      {m.dataset}")
    print(f"  method       {m.method}")
    print(f"  input        layout {m.layout} ({m.dim}D), clips resampled to {m.clip_len} frames; "
          f"through joint maps also: {', '.join(accepts) or 'none'}")
    print(f"  classes      {len(m.classes)}: {', '.join(m.classes)}")
    ev = m.evaluation
    print("  top-1        " + "  ".join(f"{lv} {100 * m.top1[lv]:.1f} %" for lv in zoo.LEVELS if lv in m.top1)
          + (f"  ({ev.get('split', 'test')} split, {ev['clips']} clips)" if ev.get("clips") else ""))
    if ev.get("command"):
        print(f"  measured by  {ev['command']}")
    if m.trained_with:
        print(f"  trained by   {m.trained_with}")
    for fname, rec in m.files.items():
        print(f"  file         {m.folder / fname} ({_size(int(rec['bytes']))}, sha256 {rec['sha256']})")
    if verified:
        print("  checksums    verified")
    if m.licence:
        print(f"  licence      {m.licence}")
    if m.card:
        print(f"  model card   {m.card}")

"""``finetec export``: write a checkpoint's network as an ONNX file."""
from __future__ import annotations

import argparse
import json

HELP = "export the recognizer or the completion module of a checkpoint to ONNX"
DESCRIPTION = (
    "Export the network of CKPT to OUTPUT (.onnx) with inputs keypoint (N, M, T, V, C) float32 and "
    "mask (N, M, T, V) bool at the checkpoint's sizes (N is dynamic). The inputs are the "
    "preprocessed clip (normalised, gap-filled, features), as finetec's Python pipeline produces "
    "it. When onnxruntime is installed the ONNX graph is checked against PyTorch and the maximum "
    "absolute difference is printed. Needs: pip install finetec[onnx]."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint folder")
    p.add_argument("output", metavar="OUTPUT", help="the .onnx file to write")
    p.add_argument("--what", choices=("recognizer", "completion"), default=None,
                   help="which network (default: recognizer, or completion for a completion checkpoint)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--json", action="store_true", help="print the export report as one JSON object")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def run(args: argparse.Namespace) -> int:
    from finetec.api import Predictor
    from finetec.console import quiet_stdout
    from finetec.errors import FinetecError
    from finetec.export import INSTALL_HINT, export_onnx, onnx_available
    from finetec.fileio import check_output, new_output

    if not str(args.output).lower().endswith(".onnx"):
        raise FinetecError("the output file name must end in .onnx", args.output)
    if not onnx_available():
        raise FinetecError(INSTALL_HINT)
    check_output(args.output, args.overwrite)
    pred = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    what = args.what or ("completion" if pred.is_completion else "recognizer")
    with quiet_stdout(), new_output(args.output, args.overwrite) as tmp:
        # quiet: the ONNX exporter prints whole graphs to stdout when it retries
        report = export_onnx(pred, tmp, what=what, opset=args.opset, check=not args.no_check)
    report["path"] = str(args.output)
    if args.json:
        print(json.dumps(report))
        return 0
    shapes = ", ".join(f"{k} {tuple(v)}" for k, v in report["inputs"].items())
    print(f"wrote {report['path']} ({what}; inputs {shapes}; outputs "
          f"{', '.join(f'{k} {tuple(v)}' for k, v in report['outputs'].items())}; opset {report['opset']})")
    if report["max_abs_diff"] is None:
        print("onnxruntime not installed (or --no-check): the graph was not compared with PyTorch")
    else:
        print(f"onnxruntime vs PyTorch: max abs diff {report['max_abs_diff']:.3g}")
    return 0

"""``finetec stream``: online recognition of frames read from standard input."""
from __future__ import annotations

import argparse
import json
import sys
from typing import IO

import numpy as np

HELP = "recognise actions online from one JSON frame per line on stdin"
DESCRIPTION = (
    "Read one frame per line from standard input and print a prediction every N frames over a "
    "sliding window of the last W frames. A line is a JSON list of joints ([x, y], [x, y, z], "
    "optionally with a trailing score; null for a missing joint), an object {\"keypoints\": [...]} "
    "(a COCO-style flat list x, y, s, ...), an object {\"people\": [...]} (OpenPose style), or "
    "null for a lost frame. The first prediction comes after W frames (--warmup), then one every "
    "N frames. A malformed line (bad JSON, wrong structure, nested too deep, longer than "
    "--max-line-bytes) is reported on stderr with its line number and counts as a lost frame; the "
    "stream goes on. NaN or Inf coordinates mark that joint missing. Memory stays flat however "
    "long the stream."
)

MAX_LINE_CHARS = 1 << 20



def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.backends import add_backend_option
    from finetec.zoo import add_model_option

    p.add_argument("checkpoint", metavar="CKPT", nargs="?",
                   help="checkpoint folder of a recognition model; omit with --model")
    add_model_option(p)
    p.add_argument("--layout", default=None, metavar="NAME_OR_PATH",
                   help="skeleton layout of the frames when it is not the model's (e.g. coco17): they are "
                        "moved onto the model's layout through the joint map (docs/layouts.md#joint-maps)")
    p.add_argument("--every", type=int, default=None, metavar="N",
                   help="frames between two predictions (default: a quarter of the window)")
    p.add_argument("--window", type=int, default=None, metavar="W",
                   help="frames in the sliding window (default: the checkpoint's clip length)")
    p.add_argument("--warmup", type=int, default=None, metavar="F",
                   help="frames before the first prediction (default: W)")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="classes per prediction (default 3)")
    p.add_argument("--min-score", type=float, default=0.0, metavar="S",
                   help="joints whose score is <= S are missing (default 0)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per prediction: {"frame", "top_k", "latency_ms", "observed_frames", "window"}')
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--max-line-bytes", type=int, default=MAX_LINE_CHARS, metavar="N",
                   help=f"longest accepted line (characters; default {MAX_LINE_CHARS}); a longer one is "
                        "skipped without being held in memory and counts as a lost frame")
    add_backend_option(p)
    p.add_argument("--incremental", action="store_true",
                   help="compute each frame once instead of re-running the window for every prediction "
                        "(ST-GCN / ST-GCN++ checkpoints; not exact: normalisation fixed from the first window; "
                        "see docs/cli/stream.md)")
    p.add_argument("--delay", type=int, default=None, metavar="F",
                   help="with --incremental: predictions describe the stream up to F frames ago (default 0); "
                        "a larger F computes less")
    p.add_argument("--spread", type=int, default=None, metavar="N",
                   help="with --incremental: spread each recomputation of the newest frames' activations over N "
                        "frames (default: the network's total stride, 4 for the zoo models); with --every below N, "
                        "predictions describe the stream N-1 to 2N-2 frames ago; 1: up to the newest frame")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 often gives steadier latency)")


def read_lines(stream_in: IO[str], max_chars: int = MAX_LINE_CHARS):
    """Yield ``(line number, text or None)`` from ``stream_in``; None for a line longer than
    ``max_chars``, whose rest is skipped in pieces of ``max_chars`` (never held in memory whole)."""
    lineno = 0
    while True:
        line = stream_in.readline(max_chars + 1)
        if not line:
            return
        lineno += 1
        if len(line) > max_chars and not line.endswith("\n"):
            while line and not line.endswith("\n"):
                line = stream_in.readline(max_chars)
            yield lineno, None
            continue
        yield lineno, line


def stream(recognizer, lines: IO[str], out: IO[str], err: IO[str], as_json: bool = False,
           min_score: float = 0.0, max_persons: int = 1, max_line_chars: int = MAX_LINE_CHARS,
           joint_map=None) -> tuple[int, int, int]:
    """Feed ``lines`` to ``recognizer``; write predictions to ``out`` and line errors to ``err``.

    ``joint_map`` (a :class:`finetec.layouts.JointMap` onto the model's layout): frames have its
    source's joints and are mapped; a joint it cannot supply is missing.

    Blank lines are skipped (they are not frames); a malformed or too long line is reported on
    ``err`` and counts as a lost frame. Returns (frames, predictions, bad lines).
    """
    from finetec.streaming import FrameError, parse_frame

    frames = preds = bad = 0
    num_joints = recognizer.num_joints if joint_map is None else joint_map.source.num_joints
    for lineno, line in read_lines(lines, max_line_chars):
        problem = None
        if line is None:
            problem = f"longer than {max_line_chars} characters (--max-line-bytes)"
        elif not line.strip():
            continue
        else:
            try:
                frame = parse_frame(json.loads(line), num_joints, recognizer.dim,
                                    max_persons=max_persons, min_score=min_score)
                if frame is not None and joint_map is not None:
                    kp, ok, _ = joint_map.apply(frame)
                    frame = np.where(ok[..., None], kp, np.nan)
            except json.JSONDecodeError as e:
                problem = f"not JSON ({e.msg} at column {e.colno})"
            except FrameError as e:
                problem = " ".join(str(e).split())
            except RecursionError:
                problem = "nested too deeply"
            except (ValueError, TypeError, OverflowError) as e:
                problem = f"not a frame ({type(e).__name__})"
        if problem is not None:
            frame = None
            bad += 1
            print(f"finetec stream: line {lineno}: {problem}; counted as a lost frame", file=err, flush=True)
        frames += 1
        p = recognizer.push(frame)
        if p is None:
            continue
        preds += 1
        if as_json:
            out.write(json.dumps(p.to_dict()) + "\n")
        elif p.top_k:
            classes = "  ".join(f"{c} {prob:.3f}" for c, prob in p.top_k)
            out.write(f"frame {p.frame}: {classes}  ({p.latency_ms:.1f} ms, "
                      f"{p.observed_frames}/{p.window} frames observed)\n")
        else:
            out.write(f"frame {p.frame}: no observed frame in the window ({p.latency_ms:.1f} ms)\n")
        out.flush()
    return frames, preds, bad


def run(args: argparse.Namespace) -> int:
    from finetec.api import Predictor
    from finetec.errors import FinetecError
    from finetec.streaming import StreamRecognizer

    if args.top_k < 1:
        raise FinetecError(f"--top-k must be at least 1, got {args.top_k}")
    if args.max_line_bytes < 16:
        raise FinetecError(f"--max-line-bytes must be at least 16, got {args.max_line_bytes}")
    if args.threads is not None:
        if args.threads < 1:
            raise FinetecError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)  # a process-wide setting, by request
    from finetec.layouts import find_joint_map
    from finetec.zoo import checkpoint_from_args

    ckpt = checkpoint_from_args(args.checkpoint, args.model)
    pred = Predictor.from_checkpoint(ckpt, device=args.device, backend=args.backend)
    if pred.is_completion:
        raise FinetecError("this checkpoint is a completion model and does not classify", ckpt)
    joint_map = None if args.layout is None else find_joint_map(args.layout, pred.layout)
    window = args.window if args.window is not None else pred.clip_len
    every = args.every if args.every is not None else max(1, window // 4)
    rec = StreamRecognizer(pred, window=window, every=every, warmup=args.warmup, top_k=args.top_k,
                           incremental=args.incremental, delay=args.delay, spread=args.spread)
    rec.warm_up()  # one-time costs stay out of the first reported latency
    frames, preds, bad = stream(rec, sys.stdin, sys.stdout, sys.stderr, as_json=args.json,
                                min_score=args.min_score, max_persons=pred.max_persons,
                                max_line_chars=args.max_line_bytes, joint_map=joint_map)
    if frames == 0:
        raise FinetecError("no frames on standard input (expected one JSON frame per line)", "<stdin>")
    if preds == 0:
        print(f"finetec stream: {frames} frame(s) read, fewer than the {rec.warmup} needed for the first "
              "prediction", file=sys.stderr)
        return 1
    return 0

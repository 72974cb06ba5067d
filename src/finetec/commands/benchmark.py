"""``finetec benchmark``: every method x dataset x corruption level, trained and tested alike.

With no arguments it runs the quick start's job: 800 clips of the built-in synthetic dataset, the
``quick`` budget, ST-GCN++ (zero and linear filling) and FineTec, each trained once on mixed
corruption levels and tested clean and at severe corruption, then prints the comparison table with
FineTec's paired difference to the best baseline and its 95 % interval (with one seed the table
says what it cannot tell). Real data gets the ``standard`` budget. Finished cells are recorded in
``DIR/results.json`` (with every test clip's prediction) and skipped when the command is run
again; a killed run resumes its unfinished training from its run folder.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

HELP = "train and test every method at every corruption level; tables, plots, resumable"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.benchmark.spec import BUDGETS, DEFAULT_DATA, LEVEL_ORDER, METHODS, REGIMES
    from finetec.data.readers import add_reader_arguments

    p.add_argument("--data", nargs="+", metavar="PATH", default=None,
                   help=f"datasets: folders/files any reader understands, or synthetic:LAYOUT "
                        f"(default: {DEFAULT_DATA})")
    add_reader_arguments(p, "-o layout=my_layout.json")
    p.add_argument("--title", action="append", default=None, metavar="TEXT",
                   help="title of the dataset in the tables (repeatable: one per --data, in order; default: "
                        "the dataset's known name or its file name)")
    p.add_argument("--methods", nargs="+", metavar="NAME", default=None,
                   help=f"methods to compare ({', '.join(METHODS)}; default: the budget's)")
    p.add_argument("--levels", nargs="+", metavar="LEVEL", default=None,
                   help=f"corruption levels ({', '.join(LEVEL_ORDER)}, or all; default: the budget's; "
                        f"per-level ablations run at severe only unless levels are given)")
    p.add_argument("--regime", default=None, metavar="NAME",
                   help=f"{' | '.join(REGIMES)}: a model per level, or one model trained on mixed levels and "
                        f"tested at every level (default: the budget's, mixed)")
    p.add_argument("--budget", default=None, metavar="NAME",
                   help=f"{' | '.join(BUDGETS)} (default: quick for synthetic data, standard otherwise)")
    p.add_argument("--out", default="runs/benchmark", metavar="DIR",
                   help="output folder: results.json, results.md, plots, runs/ (default: runs/benchmark)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and of the test corruption (default 0)")
    p.add_argument("--no-completion-table", action="store_true",
                   help="skip the gap-filler / completion-module restoration table")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: regenerate the tables and plots from DIR/results.json (with --write-docs and "
                        "no DIR/results.json: the page from the results file beside it, e.g. docs/results.json)")
    p.add_argument("--write-docs", metavar="FILE", default=None,
                   help="also write the results page to FILE (e.g. docs/results.md), plots beside it in img/")
    p.add_argument("--no-plots", action="store_true", help="write tables only")
    p.add_argument("--note", action="append", default=None, metavar="TEXT",
                   help="add a note to the results (shown at the top of the tables; repeatable); "
                        "with --report-only, --note '' clears the notes")
    p.add_argument("--device", default="auto", metavar="NAME", help="auto | cpu | cuda (default auto)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads per training run (0: torch's choice; default: the budget's, "
                        "1 for quick and cpu, which is far faster on a machine shared with other jobs)")


def _budget_name(args: argparse.Namespace, specs: list[str]) -> str:
    if args.budget:
        return args.budget
    synthetic = all(s == "synthetic" or s.startswith("synthetic:") for s in specs)
    return "quick" if synthetic else "standard"


def _command_line(args: argparse.Namespace) -> str:
    """The benchmark command as it ran, every setting explicit (recorded beside each number)."""
    parts = ["finetec", "benchmark"]
    if args.data:
        parts += ["--data", *args.data]
    if args.fmt:
        parts += ["--format", args.fmt]
    for opt in args.option or []:
        parts += ["-o", opt]
    for title in args.title or []:
        parts += ["--title", title]
    for flag, value in (("--methods", args.methods), ("--levels", args.levels)):
        if value:
            parts += [flag, *value]
    if args.regime:
        parts += ["--regime", args.regime]
    if args.budget:
        parts += ["--budget", args.budget]
    parts += ["--seed", str(args.seed), "--out", args.out]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    from finetec.benchmark import report
    from finetec.benchmark.runner import run_benchmark
    from finetec.benchmark.spec import (
        DEFAULT_DATA, make_entries, resolve_budget, resolve_levels, resolve_methods, resolve_regime,
    )
    from finetec.benchmark.store import ResultsStore
    from finetec.errors import FinetecError

    out = Path(args.out)
    results_path = out / "results.json"
    command = _command_line(args)

    docs_json = Path(args.write_docs).with_suffix(".json") if args.write_docs else None
    docs_only = False   # --report-only --write-docs docs/results.md with no DIR/results.json: the page from docs/results.json
    if args.report_only:
        if not results_path.exists():
            if docs_json is None or not docs_json.exists():
                raise FinetecError("no results.json here: run the benchmark first", out)
            docs_only = True
        store = ResultsStore(docs_json if docs_only else results_path)
    else:
        specs = args.data or [DEFAULT_DATA]
        budget = resolve_budget(_budget_name(args, specs))
        regime = resolve_regime(args.regime or budget.default_regime)
        methods = resolve_methods(args.methods, budget)
        levels = resolve_levels(args.levels, budget)
        if args.device not in ("auto", "cpu", "cuda"):
            raise FinetecError(f"unknown device {args.device!r}; devices: auto, cpu, cuda")
        from finetec.data.readers import parse_option_args

        entries = make_entries(specs, args.title, args.fmt, parse_option_args(args.option))
        from finetec.benchmark.engine_backend import EngineBackend

        if args.threads is not None and args.threads < 0:
            raise FinetecError(f"--threads must be >= 0, got {args.threads}")
        backend = EngineBackend(device=args.device, threads=args.threads)
        store = run_benchmark(entries, methods, levels, regime, budget, out, args.seed, backend,
                              explicit_levels=args.levels is not None, command=command,
                              completion_table=not args.no_completion_table)
    if args.note is not None:
        notes = [n for n in args.note if n]

        def set_notes(meta: dict) -> None:
            meta["notes"] = [] if not notes else list(dict.fromkeys(meta.get("notes", []) + notes))

        store.update_meta(set_notes)
    results = store.to_dict()
    if not docs_only:
        report.write_report(results, out / "results.md", out, plots=not args.no_plots, source=str(results_path))
    if args.write_docs:
        docs = Path(args.write_docs)
        merged = results if docs_only else merge_into(docs_json, store)
        report.write_report(merged, docs, docs.parent / "img", plots=not args.no_plots,
                            prefix="benchmark_", source=str(docs_json))
    print(report.render_summary(results))
    print("" if docs_only else f"\nfull tables: {out / 'results.md'}",
          f"docs page: {args.write_docs}" if args.write_docs else "")
    return 0


def merge_into(path: Path, run) -> dict:
    """Add the cells, completion rows and dataset facts of ``run`` (a ResultsStore) to the results
    file ``path`` (e.g. ``docs/results.json``, which keeps every recorded benchmark); a cell of the
    same key is replaced. Returns the merged results."""
    from finetec.benchmark.store import ResultsStore, merge_rows, cell_key, completion_key

    docs = ResultsStore(path)

    def merge(meta: dict) -> None:
        for key, facts in run.meta.get("datasets", {}).items():
            meta.setdefault("datasets", {}).setdefault(key, {}).update(facts)
        meta.setdefault("methods", {}).update(run.meta.get("methods", {}))
        meta["notes"] = list(dict.fromkeys([*meta.get("notes", []), *run.meta.get("notes", [])]))
        meta["commands"] = list(dict.fromkeys([*meta.get("commands", []), *run.meta.get("commands", [])]))

    docs.cells = merge_rows(docs.cells, run.cells, cell_key)
    docs.completion = merge_rows(docs.completion, run.completion, completion_key)
    docs.update_meta(merge)   # merges with the file under its lock, then saves
    return docs.to_dict()

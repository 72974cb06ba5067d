"""What one cell and the whole `standard` grid cost on this machine, from timed training steps.

For each method of the grid (and the stage-1 completion module) it times a few real optimiser
steps (forward, backward, SGD / Adam step) on batches that the benchmark's own pipeline makes from
the real dataset (T=64, augmentation, the method's gap filler), in **CPU seconds of this process**
(`time.process_time`, one torch thread): on a busy machine the wall time of a step depends on the
other jobs, its CPU time much less. Then per dataset it multiplies by the number of steps the
budget's rule gives (`Budget.epochs_for`) and adds the test passes (four levels for a mixed model),
and sums the grid of `benchmarks/run_grid.sh`. An idle 2-core machine runs two such jobs at once at
about this speed each.

    python benchmarks/bench_grid_cost.py --data ../shared/data --datasets nw_ucla utd_mhad penn_action

Prints a Markdown table. Needs the real datasets; takes a few CPU minutes.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--datasets", nargs="+", default=["nw_ucla", "utd_mhad", "penn_action"])
    ap.add_argument("--budget", default="standard")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per method (after 1 warm-up step)")
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from torch.utils.data import DataLoader

    from finetec.benchmark.engine_backend import EngineBackend
    from finetec.benchmark.machine import machine_description
    from finetec.benchmark.runner import TrainUnit, completion_unit
    from finetec.benchmark.spec import BUDGETS, METHODS, make_entries
    from finetec.data.pipeline import ClipPipeline, PipelineConfig, PipelineDataset, collate
    from finetec.engine.config import load_config
    from finetec.data.fillers import model_mask
    from finetec.models.registry import create_model

    budget = BUDGETS[args.budget]
    backend = EngineBackend("cpu", threads=1)
    tmp = Path("runs/bench_grid_cost")
    grid = {"mixed": {m: 3 for m in METHODS} | {"stgcnpp_linear": 5, "finetec": 5}, "per-level": {m: 3 for m in METHODS}}
    rows, total = [], 0.0
    for name in args.datasets:
        entry = make_entries([f"{args.data}/{name}"])[0]
        backend.prepare(entry, tmp)
        ds = backend.dataset(entry.key)
        stage1 = completion_unit(entry, budget, 0, tmp)
        units = {"completion": stage1} | {m: TrainUnit(entry, METHODS[m], "mixed", None, budget, 0, tmp)
                                          for m in METHODS}
        per_unit: dict[str, float] = {}
        comp_dir = stage1.run_dir
        for what, unit in units.items():
            cfg = backend.config(unit, None if what == "completion" else tmp / "untrained")
            if unit.method is not None and unit.method.needs_completion:
                cfg["model"].pop("completion_checkpoint", None)
                cfg["model"]["allow_untrained_completion"] = True
            unit.run_dir.mkdir(parents=True, exist_ok=True)
            import yaml

            (unit.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
            c = load_config(unit.run_dir / "config.yaml")
            pipe = ClipPipeline(ds.layout, PipelineConfig(**c.pipeline_kwargs()), train=True, seed=0,
                                dim=ds.dim, num_persons=ds.max_persons)
            idx = ds.split_indices(entry.train_split)
            loader = DataLoader(PipelineDataset(ds, idx, pipe), batch_size=c.optim.batch_size, shuffle=True,
                                collate_fn=collate, generator=torch.Generator().manual_seed(0))
            model_opts = {k: v for k, v in cfg["model"].items() if k != "name"}
            task_classes = 1 if what == "completion" else ds.num_classes
            model = create_model(cfg["model"]["name"], num_classes=task_classes, layout=ds.layout,
                                 in_channels=pipe.in_channels, num_person=ds.max_persons, **model_opts) \
                if cfg["model"]["name"] != "completion" else \
                create_model("completion", num_classes=1, layout=ds.layout, in_channels=ds.dim, **model_opts)
            opt = torch.optim.SGD(model.parameters(), lr=0.01) if what != "completion" else \
                torch.optim.Adam(model.parameters(), lr=1e-3)
            it = iter(loader)
            if what == "completion":  # its prompt bank: clean training clips, as the engine fills it
                first = next(it)
                model.set_bank(first["clean"][:, 0], first["clean_mask"][:, 0])
            model.train()
            times = []
            for step in range(args.steps + 1):
                t0 = time.process_time()
                batch = next(it)
                if what == "completion":
                    loss = model(batch["keypoint"], batch["mask"], target=batch["clean"],
                                 target_mask=batch["clean_mask"])["loss"]
                else:
                    out = model(batch["keypoint"], model_mask(batch["mask"], c.pipeline.filler))
                    logits, aux = (out["logits"], out.get("aux_loss", 0)) if isinstance(out, dict) else (out, 0)
                    loss = torch.nn.functional.cross_entropy(logits, batch["label"]) + aux
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step:
                    times.append(time.process_time() - t0)
            step_s = float(np.median(times))
            n_fit = backend.num_fit(unit, budget.val_fraction)
            epochs = budget.epochs_for(n_fit, completion=what == "completion")
            steps = epochs * math.ceil(n_fit / c.optim.batch_size)
            per_unit[what] = step_s * steps
            rows.append((name, what, c.optim.batch_size, step_s, epochs, steps, step_s * steps))
        # the grid: mixed (all methods x 3 seeds, best two x 5), per-level at severe (x 3), stage 1 x 5
        ds_total = 5 * per_unit["completion"] + sum(per_unit[m] * n for reg in grid.values() for m, n in reg.items())
        total += ds_total
        rows.append((name, "grid (46 models + 5 stage-1)", None, None, None, None, ds_total))
    print(f"Machine: {machine_description('cpu')}; {platform.python_version()}; 1 torch thread; "
          f"budget `{args.budget}`; CPU seconds per step, median of {args.steps}.\n")
    print("| dataset | model | batch | CPU s / step | epochs | steps | CPU hours |")
    print("|---|---|---|---|---|---|---|")
    for name, what, bs, st, ep, n, tot in rows:
        print(f"| {name} | {what} | {bs or ''} | {'' if st is None else f'{st:.2f}'} | {ep or ''} | {n or ''} "
              f"| {tot / 3600:.2f} |")
    print(f"\nWhole grid: {total / 3600:.1f} CPU hours; on 2 cores running two jobs at once about "
          f"{total / 3600 / 2:.1f} hours of wall time (training only; testing adds a few %).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

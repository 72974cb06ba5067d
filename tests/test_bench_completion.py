"""benchmarks/bench_completion.py: completion records by pattern, real occlusion, the generated page."""
from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from finetec.engine.checkpoint import load_model
from finetec.engine.config import Config, apply_overrides
from finetec.engine.train import train

ROOT = Path(__file__).resolve().parents[1]


def bench():
    spec = importlib.util.spec_from_file_location("bench_completion", ROOT / "benchmarks" / "bench_completion.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch completion module with an uncertainty head on synthetic data whose clips have
    real missing joints (a few joints hidden over runs of frames)."""
    from finetec.data import open_dataset

    folder = tmp_path_factory.mktemp("bench")
    ds = open_dataset("synthetic:coco17?clips=40&seed=3&subjects=3")
    mask = ds.mask.copy()
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        a, b = int(ds.offsets[i]), int(ds.offsets[i + 1])
        j = rng.integers(0, mask.shape[-1], size=2)
        mask[a + (b - a) // 3:b, :, j] = False
    path = folder / "holes.finetec.npz"
    replace(ds, mask=mask).save(path)
    cfg = apply_overrides(Config(), [
        "task=completion", f"data.path={path}", "data.val_fraction=0.2", "pipeline.clip_len=12",
        "pipeline.level=moderate", "model.name=completion", "model.width=16", "model.depth=2", "model.merge_at=1",
        "model.bank_size=16", "model.loss=l2", "model.uncertainty=true", "model.train_patterns=[random,prefix]",
        "model.transplant=0.5", "optim.name=adam", "optim.lr=0.003", "optim.weight_decay=0",
        "optim.batch_size=12", "optim.epochs=1", "runtime.threads=1", "runtime.tensorboard=off"])
    train(cfg, folder / "run")
    return folder / "run"


def test_real_occlusion_hides_another_clips_missing_joints(run):
    b = bench()
    model, info = load_model(run)
    ds, idx = b._test_data(info, None)
    batches = b.occluded_batches(info, ds, idx, seed=0)
    assert batches is not None
    mask = np.concatenate([x["mask"].numpy() for x in batches])
    clean_mask = np.concatenate([x["clean_mask"].numpy() for x in batches])
    assert not (mask & ~clean_mask).any()                    # never shows what the clip did not see
    hidden = clean_mask & ~mask
    assert hidden.any() and mask.reshape(len(mask), -1).any(1).all()
    own = [x["index"].numpy() for x in batches]
    assert sorted(np.concatenate(own).tolist()) == sorted(idx.tolist())


def test_records_and_page(run, tmp_path):
    b = bench()
    results, md = tmp_path / "results.json", tmp_path / "page.md"
    results.write_text(json.dumps({"schema": 2, "cells": [], "completion": [], "meta": {}}))
    assert b.main(["--checkpoint", f"tiny:holes={run}", "--levels", "severe", "--patterns", "random",
                   "prefix", "--results", str(results), "--md", str(md)]) == 0
    rows = json.loads(results.read_text())["completion"]
    combos = {(r["filler"], r["level"], r["pattern"]) for r in rows}
    assert ("completion", "severe", "prefix") in combos and ("linear", "real", "real") in combos
    assert len(rows) == 3 * 6                                  # (2 patterns + real) x (5 fillers + module)
    mod = next(r for r in rows if r["filler"] == "completion" and r["pattern"] == "random")
    assert mod["ms_per_clip"] > 0 and -1 <= mod["uncertainty_spearman"] <= 1 and mod["budget"] == "tiny"
    lin = next(r for r in rows if r["filler"] == "linear" and r["pattern"] == "prefix")
    assert set(lin["by_gap"]) == {"1-3", "4-7", "8-15", "16+", "edge"} and lin["by_gap"]["edge"]["share"] == 1
    text = md.read_text()
    assert "| severe | prefix |" in text and "| real | real |" in text and "Targets at severe" in text
    # the page is generated from the records alone
    md.unlink()
    assert b.main(["--report-only", "--results", str(results), "--md", str(md)]) == 0
    assert "| severe | prefix |" in md.read_text()


def test_finetec_complete_writes_the_expected_error(run, tmp_path):
    from finetec.cli import main

    out = tmp_path / "done.finetec.npz"
    data = load_model(run)[1]["config"]["data"]["path"]
    assert main(["complete", str(run), data, str(out), "--split", "test"]) == 0
    with np.load(out, allow_pickle=False) as z:
        filled, unc = z["filled"], z["uncertainty"]
    assert filled.any() and (unc[filled] > 0).all() and (unc[~filled] == 0).all()
    from finetec.data import open_dataset

    first = str(open_dataset(data).ids[0])
    lin = tmp_path / "lin.npz"
    assert main(["complete", str(run), data, str(lin), "--id", first, "--method", "linear"]) == 0
    with np.load(lin, allow_pickle=False) as z:
        assert "filled" in z.files and "uncertainty" not in z.files  # a gap filler predicts no error


def test_completing_a_clip_with_nothing_observed_is_a_one_line_error(run, tmp_path, capsys):
    from finetec.cli import main
    from finetec.data import open_dataset

    ds = open_dataset(load_model(run)[1]["config"]["data"]["path"])
    mask = ds.mask.copy()
    mask[int(ds.offsets[0]):int(ds.offsets[1])] = False
    src = tmp_path / "empty.finetec.npz"
    replace(ds, mask=mask).save(src)
    out = tmp_path / "done.npz"
    capsys.readouterr()
    assert main(["complete", str(run), str(src), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing observed" in err and str(src) in err and not out.exists()


def test_render_mask_shades_the_restored_joints_by_the_uncertainty(run, tmp_path, monkeypatch):
    from finetec import viz
    from finetec.cli import main
    from finetec.commands import render

    data = load_model(run)[1]["config"]["data"]["path"]
    done = tmp_path / "done.finetec.npz"
    corrupted = tmp_path / "corrupted.finetec.npz"
    from finetec.data import open_dataset

    ds = open_dataset(data)
    mask = ds.mask.copy()
    a, b = int(ds.offsets[0]), int(ds.offsets[1])
    mask[a + 2:b:3] = False
    replace(ds.subset([0]), mask=mask[a:b]).save(corrupted)
    assert main(["complete", str(run), str(corrupted), str(done)]) == 0
    other = open_dataset(str(done))
    unc = render._uncertainty(str(done), other, 0)
    assert unc is not None and unc.shape == other[0].mask.shape and (unc[~open_dataset(str(corrupted))[0].mask] > 0).any()
    seen = {}
    real = viz.contact_sheet

    def spy(clips, *a, **k):
        seen["clips"] = clips
        return real(clips, *a, **k)

    monkeypatch.setattr(viz, "contact_sheet", spy)
    assert main(["render", str(corrupted), str(tmp_path / "sheet.png"), "--compare", str(done), "--mask",
                 "--sheet", "3"]) == 0
    assert isinstance(seen["clips"][1], viz.ClipView) and seen["clips"][1].uncertainty is not None
    assert (tmp_path / "sheet.png").stat().st_size > 0

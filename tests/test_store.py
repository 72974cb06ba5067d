"""The memory-mapped canonical dataset folder (.finetec): round trip, streaming conversion,
validation at write time, O(1) open, verification, damaged folders, worker processes."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from finetec.cli import main
from finetec.data import open_dataset
from finetec.data.dataset import SkeletonDataset
from finetec.data.readers import read_dataset
from finetec.data.readers._common import ordered_map
from finetec.data.sample import Sample
from finetec.data.dataset import open_store
from finetec.data.store import DatasetWriter, verify, write_store
from finetec.errors import FinetecError

from test_readers import _joints, _pyskl_2d, ntu_folder, write_ntu  # noqa: F401 - fixture


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _same(a: SkeletonDataset, b: SkeletonDataset) -> None:
    assert len(a) == len(b)
    assert a.class_names == b.class_names and a.layout.to_dict() == b.layout.to_dict()
    assert sorted(a.splits) == sorted(b.splits)
    for k in a.splits:
        np.testing.assert_array_equal(a.splits[k], b.splits[k])
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert (x.id, x.label, x.meta) == (y.id, y.label, y.meta)
        np.testing.assert_array_equal(x.keypoint, y.keypoint)
        np.testing.assert_array_equal(x.mask, y.mask)
        if x.score is None:
            assert y.score is None
        else:
            np.testing.assert_array_equal(x.score, y.score)


@pytest.fixture
def small(tmp_path: Path) -> tuple[SkeletonDataset, Path]:
    ds = open_dataset("synthetic:ntu25?clips=12&seed=2")
    return ds, ds.save(tmp_path / "s.finetec")


def test_round_trip_and_file_layout(small) -> None:
    ds, path = small
    back = open_dataset(path)
    assert back.store is not None and isinstance(back.keypoint, np.memmap)
    _same(ds, back)
    assert back.meta == json.loads(json.dumps(ds.meta))
    index = json.loads((path / "index.json").read_text())
    assert index["format"] == "finetec-dataset" and index["num_clips"] == 12
    for part in index["parts"]:
        assert (path / part).is_file()
        if part.endswith(".npy"):
            np.load(path / part, mmap_mode="r", allow_pickle=False)  # every part is a plain .npy
    assert verify(open_store(path))["clips"] == 12
    # converted back to the single file, nothing changes
    _same(ds, SkeletonDataset.load(back.save(path.parent / "s.finetec.npz")))


def test_reading_a_clip_returns_fresh_arrays(small) -> None:
    _, path = small
    ds = open_store(path)
    s = ds[3]
    s.keypoint[...] = 7.0  # a private copy: the file and the next read are unaffected
    assert not np.array_equal(ds[3].keypoint, s.keypoint)
    assert ds[-1].id == ds[len(ds) - 1].id
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_pickles_as_its_path_and_loads_in_workers(small) -> None:
    import torch
    from torch.utils.data import DataLoader

    from finetec.data.pipeline import ClipPipeline, PipelineConfig, PipelineDataset, collate
    from finetec.engine.distributed import ShardedBatches

    _, path = small
    ds = open_store(path)
    blob = pickle.dumps(ds)
    assert len(blob) < 2000  # the path, not the data
    _same(ds, pickle.loads(blob))
    pipe = ClipPipeline(ds.layout, PipelineConfig(clip_len=8, level="moderate"), train=True, seed=1)
    items = PipelineDataset(ds, None, pipe)

    def epoch(workers: int, e: int) -> list[torch.Tensor]:
        sampler = ShardedBatches(len(ds), 4, seed=3)
        sampler.set_epoch(e)
        items.set_epoch(e)
        return [b["keypoint"] for b in DataLoader(items, batch_sampler=sampler, num_workers=workers,
                                                  collate_fn=collate)]

    one, two = epoch(0, 1), epoch(2, 1)
    assert len(one) == 3
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(one, epoch(0, 2)))  # another epoch, another order


def test_writer_checks_every_clip_and_leaves_nothing(tmp_path: Path) -> None:
    ok = Sample(keypoint=np.ones((1, 3, 25, 3)), mask=np.ones((1, 3, 25), bool), label=0, id="a")
    out = tmp_path / "w.finetec"
    cases = [
        (Sample.trusted(keypoint=np.full((1, 3, 25, 3), np.nan, np.float32), mask=np.ones((1, 3, 25), bool),
                        id="nan"), "clip 'nan': NaN or Inf in observed keypoints"),
        (Sample(keypoint=np.ones((3, 3, 25, 3)), mask=np.ones((3, 3, 25), bool), id="many"),
         "clip 'many' has 3 persons, more than M=2"),
        (Sample.trusted(keypoint=np.ones((1, 3, 25, 3), np.float32), mask=np.ones((1, 3, 25), np.float32),
                        id="fm"), "clip 'fm': mask must be boolean"),
        (Sample(keypoint=np.ones((1, 3, 25, 3)), mask=np.ones((1, 3, 25), bool), label=5, id="lab"),
         r"clip 'lab': label 5 outside 0..1"),
        (ok, "clip ids are not unique"),
    ]
    for bad, msg in cases:
        with pytest.raises(FinetecError, match=msg):
            with DatasetWriter(out, "ntu25", ["x", "y"], max_persons=2, dim=3) as w:
                w.add(ok)
                w.add(bad)
                w.close()
        assert not out.exists() and list(tmp_path.iterdir()) == []
    with DatasetWriter(out, "ntu25", ["x", "y"], max_persons=2, dim=3) as w:
        w.add(ok)
        w.close(splits={"train": [0]})
    assert open_store(out)[0].id == "a"


def _cli_error(argv: list[str], capsys) -> str:
    rc, out, err = _run(argv, capsys)
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def test_damaged_folder_names_the_part(small, capsys) -> None:
    import shutil

    _, path = small

    def damaged(name: str) -> Path:
        d = path.parent / name
        shutil.copytree(path, d)
        return d

    d = damaged("missing.finetec")
    (d / "mask.npy").unlink()
    assert "missing.finetec/mask.npy: dataset part: missing" in _cli_error(["inspect", str(d)], capsys)

    d = damaged("short.finetec")
    data = (d / "keypoint.npy").read_bytes()
    (d / "keypoint.npy").write_bytes(data[:-100])
    assert "short.finetec/keypoint.npy: dataset part: truncated" in _cli_error(["inspect", str(d)], capsys)

    d = damaged("altered.finetec")
    raw = bytearray((d / "keypoint.npy").read_bytes())
    raw[-5] ^= 0xFF
    (d / "keypoint.npy").write_bytes(bytes(raw))
    rc, _, _ = _run(["inspect", str(d)], capsys)
    assert rc == 0  # opening does not read the data ...
    err = _cli_error(["inspect", str(d), "--verify"], capsys)  # ... verifying does
    assert "altered.finetec/keypoint.npy: dataset part: checksum mismatch" in err

    # an offset table that points past the data (same size, so only the contents tell)
    d = damaged("offsets.finetec")
    off = np.load(d / "offsets.npy")
    off[5] = off[-1] + 1000
    with open(d / "offsets.npy", "r+b") as f:
        f.seek(128)
        f.write(off.tobytes())
    assert "offsets.finetec/offsets.npy: dataset part: the offset table is not increasing (clip 5" in _cli_error(
        ["inspect", str(d)], capsys)
    off[-1] += 1  # the table's end no longer matches the data
    with open(d / "offsets.npy", "r+b") as f:
        f.seek(128)
        f.write(off.tobytes())
    assert "offsets.npy: dataset part: the offset table spans frames" in _cli_error(["inspect", str(d)], capsys)
    # a clip whose offsets change after opening (the parts are memory-mapped): caught on reading
    d = damaged("later.finetec")
    ds = open_store(d)
    off = np.load(d / "offsets.npy")
    off[5] = off[-1] + 1000
    with open(d / "offsets.npy", "r+b") as f:
        f.seek(128)
        f.write(off.tobytes())
    with pytest.raises(FinetecError, match=r"later.finetec: part offsets.npy/persons.npy: clip 4 points "
                                           r"to frames \d+:\d+ with 1 person\(s\), outside the data"):
        ds[4]
    # per-clip values out of range
    for part, value, message in (("persons.npy", 3, r"values outside 1..1 \(1..3\)"),
                                 ("label.npy", 99, "values outside -1..13"),
                                 ("split__train.npy", 12, "values outside 0..11")):
        d = damaged(f"range_{part}.finetec")
        arr = np.load(d / part)
        arr[-1] = value
        with open(d / part, "r+b") as f:
            f.seek(128)
            f.write(arr.tobytes())
        err = _cli_error(["inspect", str(d)], capsys)
        assert f"{part}: dataset part: " in err and re.search(message, err), err
    d = damaged("ids.finetec")
    raw = bytearray((d / "id.npy").read_bytes())
    raw[-4] ^= 0x01  # another character in the last id
    (d / "id.npy").write_bytes(bytes(raw))
    assert "ids.finetec/id.npy: dataset part: checksum mismatch" in _cli_error(
        ["inspect", str(d), "--verify"], capsys)

    d = damaged("index.finetec")
    (d / "index.json").write_text("{not json")
    assert "index.finetec/index.json: damaged part index.json" in _cli_error(["inspect", str(d)], capsys)
    (d / "index.json").unlink()
    assert "index.finetec/index.json: dataset part: missing" in _cli_error(["inspect", str(d)], capsys)

    d = damaged("shape.finetec")
    index = json.loads((d / "index.json").read_text())
    index["num_frames"] += 1
    (d / "index.json").write_text(json.dumps(index))
    assert "shape.finetec/keypoint.npy: dataset part: shape" in _cli_error(["inspect", str(d)], capsys)

    d = damaged("stray.finetec")
    (d / "extra.bin").write_bytes(b"x")
    assert "files not listed in index.json: extra.bin" in _cli_error(["inspect", str(d), "--verify"], capsys)


def test_verify_rechecks_content_with_valid_checksums(small, capsys) -> None:
    """Content written by something else than the writer (checksums recomputed) is still checked."""
    import shutil

    from finetec.data.store import part_checksum

    _, path = small
    d = path.parent / "nan.finetec"
    shutil.copytree(path, d)
    kp = np.load(d / "keypoint.npy", mmap_mode="r+")
    kp[0, 0, 0, 0] = np.nan
    kp.flush()
    del kp
    index = json.loads((d / "index.json").read_text())
    index["parts"]["keypoint.npy"]["sha256"] = part_checksum(d / "keypoint.npy")
    (d / "index.json").write_text(json.dumps(index))
    err = _cli_error(["inspect", str(d), "--verify"], capsys)
    ds = open_store(path)
    assert f"clip {str(ds.ids[0])!r}: NaN or Inf in observed keypoints" in err
    rc, out, _ = _run(["inspect", str(path), "--verify", "--json"], capsys)
    assert rc == 0 and json.loads(out)["verified"]["clips"] == 12


@pytest.mark.parametrize("name, change, message", [
    ("nan.finetec.npz", lambda d: {"keypoint": np.where(np.arange(d["keypoint"].shape[0])[:, None, None, None] == 0,
                                                        np.nan, d["keypoint"]).astype(np.float32)},
     "NaN or Inf in observed keypoints"),
    ("persons.finetec.npz", lambda d: {"persons": d["persons"] + 5}, "person count 6 outside 1..1"),
    ("floatmask.finetec.npz", lambda d: {"mask": d["mask"].astype(np.float32)}, "mask must be boolean"),
    ("meta.finetec.npz", lambda d: {"meta": np.array("{not json")}, "field meta is not valid JSON"),
    ("deep.finetec.npz", lambda d: {"meta": np.array("[" * 100000 + "]" * 100000)}, "field meta is not valid JSON"),
    ("layout.finetec.npz", lambda d: {"layout": np.array("{")}, "field layout is not valid JSON"),
    ("layout2.finetec.npz", lambda d: {"layout": np.array('{"joints": 3}')}, "layout is missing field"),
    ("labels.finetec.npz", lambda d: {"label": d["label"].astype(np.float64)}, "field label must be a 1-D integer"),
    ("ids.finetec.npz", lambda d: {"id": np.arange(len(d["id"]))}, "field id must be a 1-D array of strings"),
    ("offsets.finetec.npz", lambda d: {"offsets": d["offsets"] * 2}, "offsets point to"),
    ("empty.finetec.npz", lambda d: {"offsets": np.concatenate([[0], d["offsets"]])},
     "offsets are not an increasing sequence"),
])
def test_npz_file_gets_the_checks_of_a_fresh_dataset(tmp_path, capsys, name, change, message) -> None:
    ds = open_dataset("synthetic:ntu25?clips=4&seed=1")
    good = ds.save(tmp_path / "good.finetec.npz")
    with np.load(good) as z:
        d = {k: z[k] for k in z.files}
    d.update(change(d))
    p = tmp_path / name
    with open(p, "wb") as f:
        np.savez(f, **d)
    err = _cli_error(["inspect", str(p)], capsys)
    assert name in err and message in err, err
    assert _cli_error(["convert", str(p), str(tmp_path / "o.finetec")], capsys)
    assert not (tmp_path / "o.finetec").exists()


def test_convert_streams_ntu_and_pyskl(tmp_path: Path, ntu_folder: Path, capsys) -> None:
    ref = read_dataset(ntu_folder)
    out = tmp_path / "ntu.finetec"
    rc, text, err = _run(["convert", str(ntu_folder), str(out), "-o", "workers=2"], capsys)
    assert rc == 0, err
    assert "wrote" in text and "memory-mapped folder): 3 clips" in text
    ds = open_dataset(out)
    assert ds.meta["source_format"] == "ntu" and ds.max_persons == 2
    _same(ref, ds)
    # existing output: refused without --overwrite, replaced with it
    assert "already exists" in _cli_error(["convert", str(ntu_folder), str(out)], capsys)
    rc, _, _ = _run(["convert", str(_pyskl_2d(tmp_path)), str(out), "--overwrite"], capsys)
    assert rc == 0
    back = open_dataset(out)
    _same(read_dataset(tmp_path / "gym_hrnet.pkl"), back)
    assert back.score is not None and back.meta["source_format"] == "pyskl"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    capsys.readouterr()
    # a folder that is not a dataset is never replaced
    (tmp_path / "mine.finetec").mkdir()
    (tmp_path / "mine.finetec" / "keep.txt").write_text("x")
    assert "is not a finetec dataset folder" in _cli_error(
        ["convert", str(ntu_folder), str(tmp_path / "mine.finetec"), "--overwrite"], capsys)
    assert (tmp_path / "mine.finetec" / "keep.txt").exists()


def test_convert_error_midway_leaves_nothing(tmp_path: Path, ntu_folder: Path, capsys) -> None:
    write_ntu(ntu_folder / "S003C001P001R001A002.skeleton", [[], []])  # sorts last: fails after others
    out = tmp_path / "o.finetec"
    err = _cli_error(["convert", str(ntu_folder), str(out)], capsys)
    assert "S003C001P001R001A002.skeleton: no body in any frame" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".o.finetec")]


def test_ordered_map_keeps_order_in_processes() -> None:
    items = list(range(40))
    assert list(ordered_map(abs, [-i for i in items], workers=2, window=2)) == items
    assert list(ordered_map(abs, [-3], workers=2)) == [3]


def test_write_store_with_extra_and_clip_meta(tmp_path: Path) -> None:
    ds = open_dataset("synthetic:coco17?clips=5&seed=4")
    filled = np.zeros(ds.mask.shape, bool)
    filled[3] = True
    p = write_store(ds, tmp_path / "x.finetec", extra={"filled": filled})
    np.testing.assert_array_equal(np.load(p / "extra__filled.npy"), filled)
    back = open_store(p)
    assert back.clip_meta[2] == ds.clip_meta[2] and len(back.clip_meta) == 5
    assert verify(open_store(p))["parts"] == len(json.loads((p / "index.json").read_text())["parts"])


@pytest.mark.slow
def test_resume_mid_epoch_from_a_folder_reaches_the_same_weights(tmp_path: Path) -> None:
    """Training from a .finetec folder with DataLoader workers, interrupted right after a
    mid-epoch checkpoint (runtime.checkpoint_every), resumes inside the epoch to the weights and
    metrics of the uninterrupted run."""
    from test_engine_train import assert_same_run

    from finetec.engine.config import Config, apply_overrides
    from finetec.engine.train import Trainer, train

    ds = open_dataset("synthetic:coco17?clips=24&seed=1&subjects=3")
    folder = ds.save(tmp_path / "d.finetec")
    cfg = apply_overrides(Config(), [
        f"data.path={folder}", "data.val_fraction=0.25", "pipeline.clip_len=8", "pipeline.level=moderate",
        "pipeline.augment=true", "model.name=stgcnpp", "model.base_channels=8", "model.num_stages=2",
        "model.inflate_stages=[2]", "model.down_stages=[2]", "model.dropout=0.3", "optim.epochs=2",
        "optim.batch_size=4", "runtime.threads=1", "runtime.tensorboard=off", "runtime.num_workers=1",
        "runtime.checkpoint_every=2"])
    straight = train(cfg, tmp_path / "a")

    class Killed(Exception):
        pass

    saves = []
    original = Trainer._save_mid_epoch

    def save_then_die(self, *args):
        original(self, *args)
        saves.append(args[2:4])  # (epoch, batch)
        if len(saves) == 3:  # inside the second epoch
            raise Killed

    Trainer._save_mid_epoch = save_then_die
    try:
        with pytest.raises(Killed):
            train(cfg, tmp_path / "b")
    finally:
        Trainer._save_mid_epoch = original
    assert saves[-1][0] == 1 and 0 < saves[-1][1]
    resumed = train(cfg, tmp_path / "b", resume=True)
    assert "resumed from" in (tmp_path / "b" / "train.log").read_text()
    assert f"at step {saves[-1][1]} of epoch 2" in (tmp_path / "b" / "train.log").read_text()
    assert_same_run(tmp_path / "a", straight, tmp_path / "b", resumed)


def test_every_part_damaged_every_way_is_one_line(small, capsys) -> None:
    """Each part truncated, extended, with a scrambled header, emptied, removed or with one bit
    flipped: opening (and converting) ends in exit 0 or 2 with one line, never an internal error;
    verifying never passes."""
    import random
    import shutil

    _, path = small
    rnd = random.Random(0)
    n = 0
    for part in sorted(p.name for p in path.iterdir()):
        for mode in ("half", "junk", "header", "flip", "empty", "remove"):
            d = path.parent / f"m{n}.finetec"
            n += 1
            shutil.copytree(path, d)
            f = d / part
            data = bytearray(f.read_bytes())
            if mode == "flip":
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
            edited = {"half": data[:len(data) // 2], "junk": data + b"junk", "empty": b"", "flip": data,
                      "header": bytes(rnd.randrange(256) for _ in range(min(60, len(data)))) + data[60:]}
            if mode == "remove":
                f.unlink()
            else:
                f.write_bytes(bytes(edited[mode]))
            for argv in (["inspect", str(d)], ["inspect", str(d), "--verify"], ["convert", str(d), f"{d}.npz"]):
                rc, _, err = _run(argv, capsys)
                assert rc in (0, 2) and "internal error" not in err, (part, mode, argv, err)
                assert rc == 0 or len(err.strip().splitlines()) == 1, (part, mode, err)
                if argv[-1] == "--verify" and part != "index.json":
                    assert rc == 2, (part, mode)

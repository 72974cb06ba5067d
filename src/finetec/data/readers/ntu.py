"""NTU RGB+D 60 / 120 raw skeleton files: a folder of ``SsssCcccPpppRrrrAaaa.skeleton`` text files.

File layout: the frame count; then per frame the body count; per body one line of 10 body fields
(bodyID, clipedEdges, handLeftConfidence, handLeftState, handRightConfidence, handRightState,
isResticted, leanX, leanY, trackingState), the joint count (25) and 25 lines of 12 numbers
(x y z depthX depthY colorX colorY orientationW X Y Z trackingState).

Decisions:

- bodies are tracked by ``bodyID``; at most ``max_bodies`` (2) are kept: when a clip has more,
  the ones with the largest motion (sum over joints and axes of the temporal variance of x, y, z,
  the dataset authors' heuristic) are kept; the kept bodies are ordered by that motion, most
  active first;
- a frame in which a kept body is absent is missing for that body; a frame with no body at all is
  a missing frame; joints with all-zero coordinates are missing;
- ``coords``: ``xyz`` (camera space, metres, default), ``depth`` or ``color`` (2D pixels);
- label = ``A`` - 1; 60 classes unless an action id > 60 or a setup > 17 appears (then 120), or
  ``num_classes``; names from the dataset authors' list;
- the official list of samples with missing skeletons (``missing=FILE``; a file whose name
  contains ``missing`` in the folder is used automatically) is skipped; any other clip with no
  body is an error unless ``skip_empty=true``;
- ``workers=N`` parses the files in N processes (a bounded number of clips in flight, so that
  ``finetec convert`` to a ``.finetec`` folder writes clips as they are parsed, in bounded memory);
- splits: ``xsub`` (published training subjects), ``xview`` (cameras 2 and 3 train), ``xset``
  (even setup ids train), each as ``<name>_train`` / ``<name>_test``; ``train`` / ``test`` alias
  ``xsub``.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    as_bool, as_int, class_names_option, make_sample, nonzero_mask, ordered_map, progress_counter,
    read_lines_file,
)
from finetec.data.sample import Sample
from finetec.data.store import ClipStream
from finetec.data.readers.names import NTU120_CLASSES
from finetec.errors import FinetecError

NAME = "ntu"
DESCRIPTION = "NTU RGB+D 60/120 raw .skeleton text files (3D, 25 joints, up to 2 bodies)"
_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
NUM_JOINTS = 25

NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89,
    91, 92, 93, 94, 95, 97, 98, 100, 103)
XVIEW_TRAIN_CAMERAS = (2, 3)
_COORDS = {"xyz": slice(0, 3), "depth": slice(3, 5), "color": slice(5, 7)}


def parse_name(stem: str) -> dict[str, int] | None:
    """``S001C002P003R002A013`` -> {setup, camera, performer, replication, action} or None."""
    m = _NAME.match(stem)
    if not m:
        return None
    return dict(zip(("setup", "camera", "performer", "replication", "action"), map(int, m.groups())))


def sniff(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".skeleton"
    return path.is_dir() and next(path.glob("*.skeleton"), None) is not None


def parse_skeleton_text(text: str, source: Path, ncols: int = 12
                        ) -> tuple[int, list[tuple[int, str]], np.ndarray]:
    """Parse one ``.skeleton`` file.

    Returns (T, blocks, joints): ``blocks[i] = (frame, bodyID)`` and ``joints`` float32
    (len(blocks), 25, ncols) with the first ``ncols`` numbers of every joint line (only those
    are converted: parsing text to floats is most of the reading time).
    """
    lines = text.split("\n")
    blocks: list[tuple[int, str]] = []
    joint_lines: list[str] = []
    i = 0
    try:
        T = int(lines[0])
        i = 1
        for t in range(T):
            nb = int(lines[i])
            i += 1
            for _ in range(nb):
                body_id = lines[i].split()[0]
                nj = int(lines[i + 1])
                if nj != NUM_JOINTS:
                    raise FinetecError(f"wrong joint count: frame {t + 1} has a body with {nj} joints, "
                                       f"expected {NUM_JOINTS}", source)
                i += 2
                if i + nj > len(lines):
                    raise IndexError("truncated")
                joint_lines.extend(lines[i:i + nj])
                i += nj
                blocks.append((t, body_id))
    except (IndexError, ValueError):
        raise FinetecError(f"damaged or truncated .skeleton file (at line {i + 1})", source) from None
    if T < 0:
        raise FinetecError(f"negative frame count {T}", source)
    if not blocks:
        return T, blocks, np.zeros((0, NUM_JOINTS, ncols), np.float32)
    try:
        values = np.array([ln.split(None, ncols)[:ncols] for ln in joint_lines], dtype=np.float64)
    except ValueError:
        raise FinetecError(f"damaged .skeleton file: joint lines must start with {ncols} numbers",
                           source) from None
    if values.shape != (len(joint_lines), ncols):
        raise FinetecError(f"damaged .skeleton file: joint lines must start with {ncols} numbers", source)
    return T, blocks, values.reshape(len(blocks), NUM_JOINTS, ncols).astype(np.float32)


def bodies_to_clip(T: int, blocks: list[tuple[int, str]], joints: np.ndarray, coords: slice,
                   max_bodies: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrange parsed body blocks into keypoint (M, T, 25, C) and mask (M, T, 25)."""
    order: dict[str, list[int]] = {}
    for b, (_, body_id) in enumerate(blocks):
        order.setdefault(body_id, []).append(b)
    ids = list(order)
    if len(ids) > 1:
        motion = [float(joints[order[k], :, :3].var(axis=0).sum()) if len(order[k]) > 1 else 0.0
                  for k in ids]
        ranked = sorted(range(len(ids)), key=lambda j: -motion[j])  # stable: ties keep file order
        ids = [ids[j] for j in ranked[:max_bodies]]
    C = coords.stop - coords.start
    kp = np.zeros((max(len(ids), 1), T, NUM_JOINTS, C), np.float32)
    for m, k in enumerate(ids):
        frames = [blocks[b][0] for b in order[k]]
        kp[m, frames] = joints[order[k], :, coords]
    mask = nonzero_mask(kp)
    return kp, mask


def _missing_list(folder: Path, option: str | None) -> set[str]:
    """Names of the samples to skip: the ``missing`` option's file, else ``*missing*.txt`` beside."""
    lists = [Path(option)] if option is not None else sorted(folder.glob("*missing*.txt"))[:1]
    return {ln.split()[0].removesuffix(".skeleton")
            for f in lists for ln in read_lines_file(f, "missing-skeleton list")}


def read_file(f: Path, *, coords: str = "xyz", max_bodies: int = 2, skip_empty: bool = False
              ) -> tuple[np.ndarray, np.ndarray] | None:
    """One ``.skeleton`` file -> (keypoint (M, T, 25, C), mask (M, T, 25)); None when it has no body
    and ``skip_empty`` (a module-level function so that worker processes can run it)."""
    try:
        text = f.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise FinetecError(f"cannot read file ({e.strerror or e})", f) from None
    T, blocks, joints = parse_skeleton_text(text, f, ncols=max(3, _COORDS[coords].stop))
    if T == 0:
        raise FinetecError("clip is empty (0 frames)", f)
    if not blocks:
        if skip_empty:
            return None
        raise FinetecError("no body in any frame (list the clip in the missing-skeleton file, "
                           "option missing=FILE, or use skip_empty=true)", f)
    return bodies_to_clip(T, blocks, joints, _COORDS[coords], max_bodies)


def stream(path: Path, *, coords: str = "xyz", max_bodies: int | str = 2,
           num_classes: int | str | None = None, class_names: str | None = None, missing: str | None = None,
           skip_empty: bool | str = False, workers: int | str = 1, progress_bar: bool | None = None
           ) -> ClipStream:
    """The clips of a folder of NTU ``.skeleton`` files (or one file) one at a time, in file-name
    order; ``workers`` > 1 parses in that many processes with a bounded number of clips in flight.
    Class names and sizes come from the file names before any file is parsed."""
    if coords not in _COORDS:
        raise FinetecError(f"option coords={coords!r}: choose one of {', '.join(_COORDS)}")
    max_b = as_int(max_bodies, "max_bodies", minimum=1)
    skip = as_bool(skip_empty, "skip_empty")
    folder = path if path.is_dir() else path.parent
    files = sorted(folder.glob("*.skeleton")) if path.is_dir() else [path]
    if not files:
        raise FinetecError("no .skeleton files found", path)
    skip_names = _missing_list(folder, missing)
    n_workers = as_int(workers, "workers", minimum=1)
    job = functools.partial(read_file, coords=coords, max_bodies=max_b, skip_empty=skip)
    todo: list[Path] = []
    skipped: list[str] = []
    for f in files:
        if parse_name(f.stem) is None:
            raise FinetecError("file name does not follow SsssCcccPpppRrrrAaaa.skeleton", f)
        if f.stem in skip_names:
            skipped.append(f.stem)
        else:
            todo.append(f)
    if not todo:
        raise FinetecError("every clip was skipped", path)
    infos = [parse_name(f.stem) for f in todo]
    names = class_names_option(class_names, path)
    if names is None:
        top_action = max(i["action"] for i in infos)
        top_setup = max(i["setup"] for i in infos)
        K = as_int(num_classes, "num_classes", 1) if num_classes is not None else (
            120 if top_action > 60 or top_setup > 17 else 60)
        names = list(NTU120_CLASSES[:K]) if K <= 120 else [f"A{i + 1}" for i in range(K)]
    K = len(names)
    kept: list[tuple[int, int, int]] = []  # (performer, camera, setup) of every clip yielded

    def clips() -> Iterator[Sample]:
        bar = progress_counter(len(todo), "NTU skeletons", progress_bar, unit="file")
        for f, info, res in zip(todo, infos, ordered_map(job, todo, n_workers)):
            bar.update(1)
            if res is None:
                skipped.append(f.stem)
                continue
            kept.append((info["performer"], info["camera"], info["setup"]))
            yield make_sample(res[0], res[1], id=f.stem, source=f, label=info["action"] - 1, num_classes=K,
                              meta=info)
        bar.close()

    def finish() -> tuple[dict[str, Any], dict[str, Any]]:
        if not kept:
            raise FinetecError("every clip was skipped", path)
        performers, cameras, setups = np.array(kept, dtype=np.int64).T
        xsub = np.isin(performers, NTU120_XSUB_TRAIN)  # NTU-60 performers (<= 40) follow the NTU-60 list
        xview = np.isin(cameras, XVIEW_TRAIN_CAMERAS)
        xset = setups % 2 == 0
        splits: dict[str, Any] = {}
        for name, train in (("xsub", xsub), ("xview", xview), ("xset", xset)):
            splits[f"{name}_train"] = np.flatnonzero(train)
            splits[f"{name}_test"] = np.flatnonzero(~train)
        splits["train"], splits["test"] = splits["xsub_train"], splits["xsub_test"]
        meta: dict[str, Any] = {"dataset": f"NTU RGB+D {'120' if K > 60 else '60'}",
                                "units": "metres" if coords == "xyz" else "pixels", "coords": coords}
        if skipped:
            meta["skipped"] = sorted(skipped)
        return splits, meta

    dim = _COORDS[coords].stop - _COORDS[coords].start
    return ClipStream(clips(), layout="ntu25", class_names=names, max_persons=max_b, dim=dim, has_score=False,
                      finish=finish, source=str(path))


def read(path: Path, **options: Any) -> SkeletonDataset:
    """Read a folder of NTU ``.skeleton`` files (or one file) into memory; the options are those
    of :func:`stream` (``workers`` > 1 parses in processes)."""
    return SkeletonDataset.from_stream(stream(path, **options))

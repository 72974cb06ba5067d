"""Generic pose-estimator output: one clip per JSON file or per folder of per-frame JSON files.

A frame is any of:

- ``{"people": [{"pose_keypoints_2d": [x, y, s, ...]}, ...]}`` (OpenPose);
- ``[{"keypoints": [x, y, s, ...]}, ...]`` (COCO style, a list of persons);
- ``{"keypoints": [...]}`` (one person) or ``{"instances": [...]}`` (mmpose), where
  ``keypoints`` may also be nested ``[[x, y], ...]`` with a separate ``keypoint_scores`` list.

A clip file is a list of frames or ``{"frames": [...], "layout": NAME (optional)}``; a list of
COCO results (``{"image_id", "keypoints", ...}``) is grouped into frames by ``image_id``. A folder holds one
frame per ``.json`` file, in natural name order (``frame_2`` before ``frame_10``).

A frame with no person is a missing frame; a joint with score 0 and coordinates 0 is missing, and
``score_threshold=t`` (> 0) also marks joints with score <= t missing. At most ``max_persons`` (2)
are kept per frame, the highest mean score first, and persons are carried across frames by nearest
centre (greedy), so that slot 0 stays the same person. The layout is chosen by joint count
(17 coco17, 18 openpose18, 33 mediapipe33) or the ``layout`` option. Clips are unlabelled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    as_float, as_int, choose_layout, load_json, make_sample, natural_key, progress,
)
from finetec.errors import FinetecError

NAME = "pose_json"
DESCRIPTION = "pose-estimator JSON (COCO keypoints / OpenPose people), one clip per file or folder"


def sniff(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".json"
    return path.is_dir() and next(path.glob("*.json"), None) is not None


def _person_array(person: Any, where: str, src: Path) -> np.ndarray | None:
    """(V, 3) x, y, score of one person, or None when the entry holds no keypoints."""
    if not isinstance(person, dict):
        raise FinetecError(f"{where}: a person must be an object with keypoints", src)
    kps = person.get("pose_keypoints_2d", person.get("keypoints"))
    if kps is None:
        return None
    try:
        arr = np.asarray(kps, dtype=np.float64)
    except (TypeError, ValueError):
        raise FinetecError(f"{where}: keypoints are not numbers", src) from None
    if arr.size == 0:
        return None
    if arr.ndim == 2 and arr.shape[1] in (2, 3):  # nested [[x, y(, s)], ...]
        if arr.shape[1] == 2:
            sc = person.get("keypoint_scores")
            sc = np.ones(len(arr)) if sc is None else np.asarray(sc, dtype=np.float64).reshape(-1)
            if len(sc) != len(arr):
                raise FinetecError(f"{where}: {len(sc)} keypoint_scores for {len(arr)} keypoints", src)
            arr = np.concatenate([arr, sc[:, None]], axis=1)
        return arr
    if arr.ndim != 1 or arr.size % 3:
        raise FinetecError(f"{where}: keypoints must be a flat list [x, y, score, ...] "
                           f"(length a multiple of 3), got {arr.size} values", src)
    return arr.reshape(-1, 3)


def _frame_people(frame: Any, where: str, src: Path) -> list[np.ndarray]:
    if frame is None:
        return []
    if isinstance(frame, dict):
        for key in ("people", "instances", "persons", "annotations"):
            if key in frame:
                frame = frame[key]
                break
        else:
            frame = [frame] if ("keypoints" in frame or "pose_keypoints_2d" in frame) else []
    if not isinstance(frame, list):
        raise FinetecError(f"{where}: a frame must be a list of persons or an object with 'people'", src)
    people = [_person_array(p, where, src) for p in frame]
    return [p for p in people if p is not None]


def _frames_of_file(data: Any, src: Path) -> list[Any]:
    if isinstance(data, dict) and "frames" in data:
        data = data["frames"]
    if isinstance(data, list) and data and all(isinstance(d, dict) and "image_id" in d for d in data):
        by_image: dict[Any, list[Any]] = {}
        for d in data:
            by_image.setdefault(d["image_id"], []).append(d)
        return [by_image[k] for k in sorted(by_image, key=lambda k: natural_key(str(k)))]
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]  # one frame
    raise FinetecError("a pose JSON file must hold a list of frames or an object with 'frames'", src)


def _load(f: Path) -> Any:
    return load_json(f)


def _assign(frames: list[list[np.ndarray]], max_persons: int, V: int, threshold: float, src: Path
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place persons into ``max_persons`` slots across frames; (keypoint, mask, score)."""
    T = len(frames)
    M = max(1, min(max_persons, max((len(p) for p in frames), default=0)))
    kp = np.zeros((M, T, V, 2), np.float32)
    sc = np.zeros((M, T, V), np.float32)
    mask = np.zeros((M, T, V), bool)
    last: list[np.ndarray | None] = [None] * M
    for t, people in enumerate(frames):
        for p in people:
            if len(p) != V:
                raise FinetecError(f"wrong joint count: frame {t + 1} has a person with {len(p)} joints, "
                                   f"others {V}", src)
        people = sorted(people, key=lambda p: -float(p[:, 2].mean()))[:M]
        observed = [((p[:, :2] != 0).any(1) | (p[:, 2] != 0)) & ((p[:, 2] > threshold) | (threshold <= 0))
                    for p in people]
        centres = [p[o, :2].mean(0) if o.any() else None for p, o in zip(people, observed)]
        pairs = sorted((float(np.linalg.norm(c - last[s])), j, s)
                       for j, c in enumerate(centres) if c is not None
                       for s in range(M) if last[s] is not None)
        slot: dict[int, int] = {}
        for _, j, s in pairs:  # greedy: closest (person, slot) pairs first
            if j not in slot and s not in slot.values():
                slot[j] = s
        free = [s for s in range(M) if s not in slot.values()]
        for j in range(len(people)):
            if j not in slot:
                slot[j] = free.pop(0)
        for j, s in slot.items():
            p, o = people[j], observed[j]
            kp[s, t], sc[s, t], mask[s, t] = p[:, :2], p[:, 2], o
            if centres[j] is not None:
                last[s] = centres[j]
    return kp, mask, sc


def read(path: Path, *, layout: str | None = None, score_threshold: float | str = 0.0,
         max_persons: int | str = 2, progress_bar: bool | None = None) -> SkeletonDataset:
    """Read one clip of pose-estimator JSON (a file, or a folder of per-frame files)."""
    threshold = as_float(score_threshold, "score_threshold")
    max_p = as_int(max_persons, "max_persons", minimum=1)
    stored = None
    if path.is_dir():
        files = sorted(path.glob("*.json"), key=lambda p: natural_key(p.name))
        if not files:
            raise FinetecError("no .json files in the folder", path)
        frames = [_frame_people(_load(f), f"frame file {f.name}", f) for f in progress(files, "JSON frames",
                                                                                      progress_bar)]
        clip_id = path.name
    else:
        data = _load(path)
        if isinstance(data, dict) and isinstance(data.get("layout"), str):
            stored = data["layout"]
        raw = _frames_of_file(data, path)
        frames = [_frame_people(fr, f"frame {t + 1}", path) for t, fr in enumerate(raw)]
        clip_id = path.stem
    if not frames:
        raise FinetecError("clip is empty (0 frames)", path)
    counts = {len(p) for fr in frames for p in fr}
    if not counts:
        raise FinetecError("every frame is missing (no person detected in any frame)", path)
    if len(counts) > 1:
        raise FinetecError(f"wrong joint count: persons have different joint counts {sorted(counts)}", path)
    V = counts.pop()
    lay = choose_layout(layout, V, path, stored=stored)
    kp, mask, score = _assign(frames, max_p, V, threshold, path)
    sample = make_sample(kp, mask, score=score, id=clip_id, source=path, meta={"frames": len(frames)})
    return SkeletonDataset.from_samples([sample], lay, [], meta={"dataset": clip_id, "units": "pixels"},
                                        source=str(path))

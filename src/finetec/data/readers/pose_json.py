"""Generic pose-estimator output: one clip per JSON file or per folder of per-frame JSON files.

A frame is any of:

- ``{"people": [{"pose_keypoints_2d": [x, y, s, ...]}, ...]}`` (OpenPose; ``pose_keypoints_3d``
  holds ``[x, y, z, s, ...]``);
- ``[{"keypoints": [x, y, s, ...]}, ...]`` (COCO style, a list of persons);
- ``{"keypoints": [...]}`` (one person) or ``{"instances": [...]}`` (mmpose), where
  ``keypoints`` may also be nested ``[[x, y], ...]`` / ``[[x, y, z], ...]`` with a separate
  ``keypoint_scores`` list.

2D or 3D: a clip file may say ``"dim": 2`` or ``"dim": 3``, and the ``dim`` option (``-o dim=3``)
says it for any input. Without either, the rules are: ``pose_keypoints_2d`` is 2D and
``pose_keypoints_3d`` is 3D; nested rows of 2 values are x, y and of 4 values x, y, z, score; nested
rows of 3 values are x, y, z when ``keypoint_scores`` are given separately, and an error naming the
ambiguity otherwise (x, y, score or x, y, z?); a flat ``keypoints`` list is COCO's x, y, score, and
an error when a third value is not a score (outside [0, 1] and not a COCO visibility 0/1/2), since
that is probably a depth. A z is never read as a score silently.

A clip file is a list of frames or ``{"frames": [...], "id": TEXT, "layout": NAME, "dim": 2 | 3,
"units": TEXT}`` (all but ``frames`` optional; the id defaults to the file name); a list of
COCO results (``{"image_id", "keypoints", ...}``) is grouped into frames by ``image_id``. A folder holds one
frame per ``.json`` file, in natural name order (``frame_2`` before ``frame_10``).

A frame with no person is a missing frame; a joint with score 0 and coordinates 0 is missing, and
``score_threshold=t`` (> 0) also marks joints with score <= t missing. At most ``max_persons`` (2)
are kept per frame, the highest mean score first, and persons are carried across frames by nearest
centre (greedy), so that slot 0 stays the same person. The layout is chosen by joint count
(17 coco17, 18 openpose18, 33 mediapipe33) or the ``layout`` option. Clips are unlabelled.

:func:`write` writes one clip in this format (2D: flat ``[x, y, s, ...]``; 3D: nested
``[[x, y, z], ...]`` with ``keypoint_scores`` and ``"dim": 3``), which :func:`read` reads back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import as_float, as_int, choose_layout, load_json, make_sample, natural_key, progress
from finetec.errors import FinetecError
from finetec.fileio import write_text_atomic
from finetec.layouts import layout_to_config

NAME = "pose_json"
DESCRIPTION = "pose-estimator JSON (COCO keypoints / OpenPose people), one clip per file or folder"


def sniff(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".json"
    return path.is_dir() and next(path.glob("*.json"), None) is not None


def _dim_of(value: Any, what: str, src: Path) -> int | None:
    """The ``dim`` option or file field: None (not given), 2 or 3."""
    if value is None or value == "":
        return None
    if str(value).strip() in ("2", "3"):
        return int(str(value).strip())
    raise FinetecError(f"{what} must be 2 or 3, got {value!r}", src)


def _ambiguous(where: str, what: str) -> str:
    return (f"{where}: {what} could be 2D with a score (x, y, score) or 3D (x, y, z); say which with "
            "the reader option dim=2 or dim=3 (-o dim=3), or a \"dim\" field in the file")


def _person_array(person: Any, where: str, src: Path, dim: int | None) -> np.ndarray | None:
    """(V, D + 1) coordinates then score of one person (D = 2 or 3), or None when the entry holds
    no keypoints. ``dim``: the number of coordinates when the file or an option says it."""
    if not isinstance(person, dict):
        raise FinetecError(f"{where}: a person must be an object with keypoints", src)
    key = next((k for k in ("pose_keypoints_2d", "pose_keypoints_3d", "keypoints") if k in person), None)
    if key is None or person[key] is None:
        return None
    try:
        arr = np.asarray(person[key], dtype=np.float64)
        sc = person.get("keypoint_scores")
        sc = None if sc is None else np.asarray(sc, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise FinetecError(f"{where}: keypoints are not numbers", src) from None
    if arr.size == 0:
        return None
    fixed = {"pose_keypoints_2d": 2, "pose_keypoints_3d": 3}.get(key)
    if fixed is not None:  # OpenPose: flat x, y(, z), score per joint
        if dim is not None and dim != fixed:
            raise FinetecError(f"{where}: {key} holds {fixed}D keypoints but dim={dim} was given", src)
        if arr.ndim != 1 or arr.size % (fixed + 1):
            raise FinetecError(f"{where}: {key} must be a flat list of {fixed + 1} values per joint, "
                               f"got {arr.size} values", src)
        return arr.reshape(-1, fixed + 1)
    if arr.ndim == 1 and sc is not None and len(sc) and arr.size % len(sc) == 0:
        arr = arr.reshape(len(sc), -1)  # flat keypoints with separate scores: values per joint known
    if arr.ndim == 2:  # nested [[x, y(, z)(, s)], ...]
        cols = arr.shape[1]
        if sc is not None and len(sc) != len(arr):
            raise FinetecError(f"{where}: {len(sc)} keypoint_scores for {len(arr)} keypoints", src)
        if cols == 3 and dim is None and sc is None:
            raise FinetecError(_ambiguous(where, "3 values per joint"), src)
        # documented rule: separate keypoint_scores make three values per joint x, y, z
        d = {2: 2, 4: 3}.get(cols, dim if dim is not None else 3) if cols in (2, 3, 4) else None
        if d is None or (dim is not None and d != dim):
            raise FinetecError(f"{where}: {cols} values per joint do not fit "
                               f"{f'dim={dim}' if dim else 'x, y(, z)(, score)'}", src)
        if cols == d + 1:  # the last column is the score
            return arr
        score = np.ones(len(arr)) if sc is None else sc
        return np.concatenate([arr, score[:, None]], axis=1)
    if arr.ndim != 1:
        raise FinetecError(f"{where}: keypoints must be a flat list or a list of [x, y, ...] rows", src)
    if dim == 3:
        if arr.size % 3:
            raise FinetecError(f"{where}: with dim=3 keypoints must be a flat list [x, y, z, ...], "
                               f"got {arr.size} values", src)
        return np.concatenate([arr.reshape(-1, 3), np.ones((arr.size // 3, 1))], axis=1)
    if arr.size % 3:
        raise FinetecError(f"{where}: keypoints must be a flat list [x, y, score, ...] "
                           f"(length a multiple of 3), got {arr.size} values", src)
    out = arr.reshape(-1, 3)
    if dim is None:  # COCO rule: x, y, score; a third value that is no score is probably a depth
        s = out[:, 2]
        if ((s < 0) | (s > 1)).any() and not np.isin(s, (0, 1, 2)).all():
            bad = float(s[(s < 0) | (s > 1)][0])
            raise FinetecError(_ambiguous(where, f"a flat [x, y, ?, ...] list whose third values are not "
                                                 f"scores in [0, 1] (e.g. {bad:g})"), src)
    return out


def _frame_people(frame: Any, where: str, src: Path, dim: int | None) -> list[np.ndarray]:
    if frame is None:
        return []
    if isinstance(frame, dict):
        for key in ("people", "instances", "persons", "annotations"):
            if key in frame:
                frame = frame[key]
                break
        else:
            frame = [frame] if any(k in frame for k in ("keypoints", "pose_keypoints_2d", "pose_keypoints_3d")) \
                else []
    if not isinstance(frame, list):
        raise FinetecError(f"{where}: a frame must be a list of persons or an object with 'people'", src)
    people = [_person_array(p, where, src, dim) for p in frame]
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


def _assign(frames: list[list[np.ndarray]], max_persons: int, V: int, C: int, threshold: float, src: Path
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place persons into ``max_persons`` slots across frames; (keypoint, mask, score)."""
    T = len(frames)
    M = max(1, min(max_persons, max((len(p) for p in frames), default=0)))
    kp = np.zeros((M, T, V, C), np.float32)
    sc = np.zeros((M, T, V), np.float32)
    mask = np.zeros((M, T, V), bool)
    last: list[np.ndarray | None] = [None] * M
    for t, people in enumerate(frames):
        for p in people:
            if len(p) != V:
                raise FinetecError(f"wrong joint count: frame {t + 1} has a person with {len(p)} joints, "
                                   f"others {V}", src)
        people = sorted(people, key=lambda p: -float(p[:, C].mean()))[:M]
        observed = [((p[:, :C] != 0).any(1) | (p[:, C] != 0)) & ((p[:, C] > threshold) | (threshold <= 0))
                    for p in people]
        centres = [p[o, :C].mean(0) if o.any() else None for p, o in zip(people, observed)]
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
            kp[s, t], sc[s, t], mask[s, t] = p[:, :C], p[:, C], o
            if centres[j] is not None:
                last[s] = centres[j]
    return kp, mask, sc


def read(path: Path, *, layout: str | None = None, score_threshold: float | str = 0.0,
         max_persons: int | str = 2, dim: int | str | None = None, progress_bar: bool | None = None
         ) -> SkeletonDataset:
    """Read one clip of pose-estimator JSON (a file, or a folder of per-frame files)."""
    threshold = as_float(score_threshold, "score_threshold")
    max_p = as_int(max_persons, "max_persons", minimum=1)
    want = _dim_of(dim, "the dim option", path)
    stored, units, extra = None, None, {}
    if path.is_dir():
        files = sorted(path.glob("*.json"), key=lambda p: natural_key(p.name))
        if not files:
            raise FinetecError("no .json files in the folder", path)
        frames = [_frame_people(_load(f), f"frame file {f.name}", f, want)
                  for f in progress(files, "JSON frames", progress_bar)]
        clip_id = path.name
    else:
        data = _load(path)
        if isinstance(data, dict) and isinstance(data.get("layout"), str):
            stored = data["layout"]
        if isinstance(data, dict) and isinstance(data.get("units"), str):
            units = data["units"]
        if isinstance(data, dict) and isinstance(data.get("completion"), dict):
            extra["completion"] = data["completion"]  # written by finetec complete
        if isinstance(data, dict) and data.get("dim") is not None:
            in_file = _dim_of(data["dim"], "the file's \"dim\" field", path)
            if want is not None and want != in_file:
                raise FinetecError(f"the file says \"dim\": {in_file} but the option says dim={want}", path)
            want = in_file
        raw = _frames_of_file(data, path)
        frames = [_frame_people(fr, f"frame {t + 1}", path, want) for t, fr in enumerate(raw)]
        clip_id = data["id"] if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"] \
            else path.stem
    if not frames:
        raise FinetecError("clip is empty (0 frames)", path)
    counts = {len(p) for fr in frames for p in fr}
    if not counts:
        raise FinetecError("every frame is missing (no person detected in any frame)", path)
    if len(counts) > 1:
        raise FinetecError(f"wrong joint count: persons have different joint counts {sorted(counts)}", path)
    dims = {p.shape[1] - 1 for fr in frames for p in fr}
    if len(dims) > 1:
        raise FinetecError("persons mix 2D and 3D keypoints", path)
    V, C = counts.pop(), dims.pop()
    lay = choose_layout(layout, V, path, stored=stored, usual={17: "coco17"})  # COCO keypoints
    kp, mask, score = _assign(frames, max_p, V, C, threshold, path)
    sample = make_sample(kp, mask, score=score, id=clip_id, source=path, meta={"frames": len(frames)})
    units = units or ("pixels" if C == 2 else "unknown")
    return SkeletonDataset.from_samples([sample], lay, [], meta={"dataset": clip_id, "units": units, **extra},
                                        source=str(path))


def layout_field(layout: Any) -> str:
    """What a file records as its layout: a built-in layout's name, else the whole layout as JSON
    (this reader and the plain ``.npz`` reader take either)."""
    ref = layout_to_config(layout)
    return ref if isinstance(ref, str) else layout.to_json()


def write(path: str | Path, ds: SkeletonDataset, index: int = 0, filled: np.ndarray | None = None,
          extra: dict[str, Any] | None = None) -> None:
    """Write clip ``index`` of ``ds`` as one pose JSON file (atomically): ``{"id", "layout", "dim",
    "units", **extra, "frames": [{"frame": t, "people": [{"keypoints", "keypoint_scores"?,
    "filled"?}]}]}``. A joint's score is 1 when it is observed (or filled), 0 when missing; a frame
    with no observed joint has no person. ``filled``: optional (M, T, V) bool of filled entries,
    written per person as 0/1 per joint."""

    clip = ds[index]
    kp, mk = clip.keypoint, clip.mask               # (M, T, V, C), (M, T, V)
    m, T, _, C = kp.shape
    fl = None if filled is None else np.asarray(filled, dtype=bool)
    frames = []
    for t in range(T):
        people = []
        for p in range(m):
            if not mk[p, t].any():
                continue
            score = mk[p, t].astype(np.float32)
            if C == 2:
                flat = np.concatenate([kp[p, t], score[:, None]], axis=1).reshape(-1)
                person: dict[str, Any] = {"keypoints": [round(float(v), 6) for v in flat]}
            else:
                person = {"keypoints": [[round(float(v), 6) for v in row] for row in kp[p, t]],
                          "keypoint_scores": [int(v) for v in score]}
            if fl is not None:
                person["filled"] = [int(v) for v in fl[p, t]]
            people.append(person)
        frames.append({"frame": t, "people": people})
    doc = {"id": str(ds.ids[index]), "layout": layout_field(ds.layout), "dim": int(C),
           "units": str(ds.meta.get("units", "unknown")), **(extra or {}), "frames": frames}
    write_text_atomic(path, json.dumps(doc) + "\n")

"""Checks that a dataset's layout fits its data (``finetec inspect`` prints them).

A wrong layout (joints in another order than the layout says) reads without error and trains
without error, on the wrong graph. These statistics make it visible:

- **per-joint missing fractions**: a joint that is almost never observed (a tracker that gives
  up on the feet, a centre joint the dataset does not have);
- **bone-length consistency**: a real bone is short and keeps its length while the body moves; a
  "bone" between two joints that are not neighbours (what a wrong joint order produces) is long
  or stretches and shrinks. For every edge of the layout, per clip: its mean length and its std
  over frames, both relative to the body's size, and the coefficient of variation (std / mean);
  medians over clips. Bones are listed by stretch and flagged when longer than half the body or
  stretching far more than the layout's typical bone;
- **vertical axis**: the coordinate along which the skeleton extends most in a frame (a standing
  or sitting person is taller than wide), against the direction of the layout's ``up_axis``; and
  the fraction of frames in which the leg regions' joints lie below the up axis's end (near 1 for
  a body the right way up; a reversed axis or a torso in another order gives near 0);
- **centre never observed**: clips in which no joint of the layout's ``center`` is ever observed;
  their body centre falls back to the mean of the observed joints;
- **nothing observed**: clips without a single observed joint (:func:`nothing_observed`; training
  refuses them).

Bone and axis statistics are computed on at most ``max_clips`` clips, evenly spaced.
"""
from __future__ import annotations

from typing import Any

import numpy as np

MAX_CLIPS = 1000      # clips used for the bone and axis statistics (evenly spaced)
LONG_BONE = 0.5       # a bone is flagged when its mean length exceeds this fraction of the body's size,
STRETCH_FLAG = 0.05   # or its std over frames exceeds this fraction and FLAG_RATIO x the median bone's
FLAG_RATIO = 3.0
SHOW_BONES = 5        # worst bones listed
AXIS_NAMES = "xyz"


def _clip_indices(n: int, max_clips: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, num=min(n, max_clips)).round().astype(np.int64)) if n else \
        np.zeros(0, dtype=np.int64)


def per_joint_missing(ds: Any) -> np.ndarray:
    """(V,) fraction of person-frames (persons present in the clip) in which each joint is missing."""
    F, M, V = ds.mask.shape
    valid = np.arange(M)[None, :] < np.repeat(ds.persons.astype(np.int64), ds.lengths)[:, None]   # (F, M)
    observed = np.zeros(V, dtype=np.int64)
    for a in range(0, F, 1 << 16):
        observed += (ds.mask[a:a + (1 << 16)] & valid[a:a + (1 << 16), :, None]).sum(axis=(0, 1))
    total = int(valid.sum())
    return 1.0 - observed / max(total, 1)


def bone_stats(ds: Any, clips: np.ndarray) -> dict[str, np.ndarray]:
    """Per edge (E,), medians over ``clips`` (and persons) of: ``cv`` the length's std / mean over
    frames; ``length`` the mean length and ``stretch`` its std, both relative to the body's size
    (the largest side of the skeleton's bounding box, median over frames). NaN where never measured."""
    edges = np.asarray(ds.layout.edges, dtype=np.int64).reshape(-1, 2)
    rows = []
    for i in clips:
        a, b, m = int(ds.offsets[i]), int(ds.offsets[i + 1]), int(ds.persons[i])
        kp = ds.keypoint[a:b, :m].astype(np.float64)                       # (T, m, V, C)
        mk = ds.mask[a:b, :m]
        length = np.linalg.norm(kp[:, :, edges[:, 0]] - kp[:, :, edges[:, 1]], axis=-1)   # (T, m, E)
        ok = mk[:, :, edges[:, 0]] & mk[:, :, edges[:, 1]]
        lo = np.where(mk[..., None], kp, np.inf).min(axis=2)               # (T, m, C)
        hi = np.where(mk[..., None], kp, -np.inf).max(axis=2)
        for p in range(m):
            seen = mk[:, p].sum(axis=-1) >= 2
            if not seen.any():
                continue
            size = float(np.median((hi[seen, p] - lo[seen, p]).max(axis=-1)))
            n = ok[:, p].sum(axis=0)                                         # (E,)
            mean = np.where(ok[:, p], length[:, p], 0.0).sum(axis=0) / np.maximum(n, 1)
            std = np.sqrt(np.where(ok[:, p], (length[:, p] - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1))
            good = (n >= 3) & (mean > 1e-9) & (size > 1e-9)
            row = np.full((3, len(edges)), np.nan)
            row[0, good] = std[good] / mean[good]
            row[1, good] = mean[good] / size
            row[2, good] = std[good] / size
            rows.append(row)
    out = {k: np.full(len(edges), np.nan) for k in ("cv", "length", "stretch")}
    if rows:
        allr = np.stack(rows)                                                # (clips x persons, 3, E)
        for k, key in enumerate(("cv", "length", "stretch")):
            for e in range(len(edges)):
                col = allr[:, k, e][np.isfinite(allr[:, k, e])]
                if col.size:
                    out[key][e] = float(np.median(col))
    return out


def vertical_axis(ds: Any, clips: np.ndarray) -> dict[str, Any]:
    """The coordinate the skeleton extends most along, and the direction of the layout's up axis."""
    C = ds.dim
    extent = np.zeros(C)
    up = np.zeros(C)
    legs = list(ds.layout.regions["left_leg"]) + list(ds.layout.regions["right_leg"])
    below, counted = 0, 0
    for i in clips:
        a, b, m = int(ds.offsets[i]), int(ds.offsets[i + 1]), int(ds.persons[i])
        kp, mk = ds.keypoint[a:b, :m].astype(np.float64), ds.mask[a:b, :m]
        lo = np.where(mk[..., None], kp, np.inf).min(axis=2)                 # (T, m, C)
        hi = np.where(mk[..., None], kp, -np.inf).max(axis=2)
        ok = mk.sum(axis=2) >= 2
        if ok.any():
            ext = (hi - lo)[ok]
            extent += ext.sum(axis=0) / max(np.linalg.norm(ext, axis=-1).sum(), 1e-12)
        ax = ds.layout.up_axis
        if ax is not None:
            f, t = list(ax[0]), list(ax[1])
            both = mk[:, :, f].all(axis=-1) & mk[:, :, t].all(axis=-1)     # (T, m)
            if both.any():
                top = kp[:, :, t].mean(axis=2)[both]
                v = top - kp[:, :, f].mean(axis=2)[both]
                n = np.linalg.norm(v, axis=-1, keepdims=True)
                up += (v / np.maximum(n, 1e-12)).sum(axis=0)
                lm = mk[:, :, legs][both]                                  # (P, L)
                has = lm.any(axis=-1)
                if has.any():
                    leg = (np.where(lm[..., None], kp[:, :, legs][both], 0.0).sum(axis=1)
                           / np.maximum(lm.sum(axis=1), 1)[:, None])
                    d = ((leg - top) * v).sum(axis=-1)[has]                 # < 0: legs below the top
                    below += int((d < 0).sum())
                    counted += int(has.sum())
    out: dict[str, Any] = {"data_axis": None, "layout_up": None, "layout_up_share": None, "agree": None,
                           "legs_below": round(below / counted, 4) if counted else None}
    if extent.any():
        out["data_axis"] = AXIS_NAMES[int(np.argmax(extent))]
    if up.any():
        k = int(np.argmax(np.abs(up)))
        out["layout_up"] = ("+" if up[k] > 0 else "-") + AXIS_NAMES[k]
        out["layout_up_share"] = round(float(abs(up[k]) / np.linalg.norm(up)), 3)
    if out["data_axis"] is not None and out["layout_up"] is not None:
        out["agree"] = out["layout_up"][1] == out["data_axis"]
    return out


def centre_unobserved(ds: Any) -> np.ndarray:
    """(N,) bool: clips in which no joint of the layout's centre is observed in any frame."""
    seen = ds.mask[:, :, list(ds.layout.center)].any(axis=(1, 2)).astype(np.int64)   # (F,)
    if len(seen) == 0:
        return np.ones(len(ds), dtype=bool)
    per_clip = np.add.reduceat(seen, ds.offsets[:-1]) if len(ds) else np.zeros(0, np.int64)
    per_clip = np.where(ds.lengths > 0, per_clip, 0)
    return per_clip == 0


def nothing_observed(ds) -> np.ndarray:
    """bool (N,): the clips of ``ds`` without a single observed joint in any frame (clips with
    no frame included). Training refuses them (:func:`finetec.engine.sanity.check_split`);
    ``finetec inspect`` reports them."""
    if len(ds.mask) == 0:
        return np.ones(len(ds), dtype=bool)
    frame_obs = ds.mask.reshape(len(ds.mask), -1).any(axis=1).astype(np.int64)       # (F,)
    observed = np.add.reduceat(np.append(frame_obs, 0), np.minimum(ds.offsets[:-1], len(frame_obs)))
    return (ds.lengths == 0) | (observed == 0)


def layout_checks(ds: Any, max_clips: int = MAX_CLIPS) -> dict[str, Any]:
    """The checks above as a JSON-ready dict, with ``warnings`` (one line each)."""
    lay = ds.layout
    clips = _clip_indices(len(ds), max_clips)
    missing = per_joint_missing(ds)
    st = bone_stats(ds, clips)
    cv, rel, stretch = st["cv"], st["length"], st["stretch"]
    finite = stretch[np.isfinite(stretch)]
    typical = float(np.median(finite)) if finite.size else None
    order = [int(e) for e in np.argsort(np.where(np.isfinite(stretch), -stretch, np.inf)) if np.isfinite(stretch[e])]
    bones = [{"child": lay.joints[lay.edges[e][0]], "parent": lay.joints[lay.edges[e][1]],
              "cv": round(float(cv[e]), 4), "length": round(float(rel[e]), 4),
              "stretch": round(float(stretch[e]), 4),
              "flagged": bool(rel[e] > LONG_BONE or (stretch[e] > STRETCH_FLAG and typical is not None
                                                     and stretch[e] > FLAG_RATIO * typical))}
             for e in order]
    axis = vertical_axis(ds, clips)
    no_centre = centre_unobserved(ds)
    warnings = []
    flagged = [b for b in bones if b["flagged"]]
    if flagged:
        names = ", ".join(f"{b['child']}->{b['parent']} ({b['length']:.2f}, {b['stretch']:.3f})"
                          for b in flagged[:SHOW_BONES])
        warnings.append(f"{len(flagged)} bone(s) too long or stretching (length, std over frames, "
                        f"relative to the body's size; typical std {typical:.3f}): {names}; is the "
                        "layout's joint order that of the data?")
    if axis["agree"] is False:
        warnings.append(f"the skeleton extends most along {axis['data_axis']} but the layout's up_axis "
                        f"points along {axis['layout_up']}; check the layout's up_axis joints and order")
    if axis["legs_below"] is not None and axis["legs_below"] < 0.5:
        to = "+".join(lay.joints[j] for j in lay.up_axis[1])
        warnings.append(f"the leg joints lie below {to} (the up_axis's end) in only "
                        f"{100 * axis['legs_below']:.0f} % of frames: the up_axis is reversed or the "
                        "joint order is not the data's")
    if no_centre.any():
        centre = ", ".join(lay.joints[j] for j in lay.center)
        warnings.append(f"centre joint(s) {centre} never observed in {int(no_centre.sum())} of {len(ds)} "
                        "clips: their body centre falls back to the mean of the observed joints")
    worst_missing = np.argsort(-missing)
    return {
        "clips_checked": int(len(clips)),
        "missing_by_joint": {lay.joints[j]: round(float(missing[j]), 4) for j in range(lay.num_joints)},
        "most_missing": [lay.joints[j] for j in worst_missing[:SHOW_BONES] if missing[j] > 0],
        "bone_stretch_typical": None if typical is None else round(typical, 4),
        "bones": bones,
        "vertical": axis,
        "centre_never_observed": {"clips": int(no_centre.sum()),
                                  "ids": [str(i) for i in ds.ids[no_centre][:20]]},
        "warnings": warnings,
    }

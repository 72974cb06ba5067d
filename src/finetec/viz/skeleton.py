"""Skeleton drawings: animations (:func:`render_clip`) and contact sheets (:func:`contact_sheet`).

A clip is ``keypoint`` (M, T, V, C) + ``mask`` (M, T, V) on a :class:`~finetec.layouts.Layout`.
Bones follow the layout's edges and take the colour of the child joint's region
(:data:`REGION_COLORS`). Each person gets its own marker shape. Axis limits are fixed over the
clip (from its observed joints). 2D clips in image coordinates (y grows downwards) are detected
from the layout's up axis (:func:`detect_y_down`) and drawn upright; 3D clips are drawn on an
orthographic 3D axes with the body's up direction vertical.

Missing data is drawn, never hidden: a frame with no observed joint shows a faded grey ghost of
the nearest observed pose and a "missing" label; a timeline strip under every panel colours each
frame as observed, partial (some joints missing), missing, or restored (missing in the first
clip of a comparison, observed in this one). With ``show_mask`` every missing joint of a drawn
frame appears as a hollow red circle at its nearest observed position in time, and joints that
a compared clip restored get a blue ring.

All output files are written atomically (:func:`finetec.fileio.atomic_path`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from finetec.errors import FinetecError
from finetec.fileio import atomic_path
from finetec.layouts import REGION_NAMES, Layout, get_layout
from finetec.viz.figure import PLOT_SUFFIXES, SKELETON_SUFFIXES, _check_suffix, _new_figure

# -- appearance ------------------------------------------------------------------------------
REGION_COLORS: dict[str, str] = {
    "head_torso": "#555555",
    "left_arm": "#1f77b4",
    "right_arm": "#9467bd",
    "left_leg": "#2ca02c",
    "right_leg": "#ff7f0e",
}
MISSING_COLOR = "#e41a1c"
RESTORED_COLOR = "#00a0e0"
GHOST_COLOR = "#9e9e9e"
PERSON_MARKERS = ("o", "s", "^", "D", "v", "P")

# Frame states shown in the timeline strip.
OBSERVED, PARTIAL, MISSING, RESTORED = 0, 1, 2, 3
STATE_NAMES = ("observed", "partial", "missing", "restored")
STATE_COLORS = ("#8bc34a", "#ffb300", "#e53935", "#29b6f6")

# Geometry (inches). Sizes are fixed so that output images have a predictable pixel size.
PANEL_IN = 4.0          # animation: square skeleton panel
TITLE_IN = 0.5          # animation: title band above each panel
STRIP_IN = 0.25         # timeline strip under each panel / each contact-sheet row
LEGEND_IN = 0.5         # legend band at the bottom of every skeleton figure
CELL_IN = 2.0           # contact sheet: square cell per key frame
ROW_TITLE_IN = 0.25     # contact sheet: clip title above each row
CELL_LABEL_IN = 0.25    # contact sheet: frame label above each cell

DEFAULT_FPS = 15.0
DEFAULT_MAX_FRAMES = 300
DEFAULT_SHEET_FRAMES = 8
DEFAULT_DPI = 80


# -- clips -----------------------------------------------------------------------------------
@dataclass
class ClipView:
    """One clip prepared for drawing.

    keypoint: float (M, T, V, C) coordinates (values where ``mask`` is False are ignored).
    mask:     bool  (M, T, V) observed joints.
    layout:   the skeleton layout (V joints).
    title:    the panel title.
    uncertainty: float (M, T, V) or None: a completion's uncertainty of each restored joint; with
              ``show_mask`` the restored joints' rings are shaded by it (solid = the surest third
              of the clip's restored joints, faint = the least sure third).
    """

    keypoint: np.ndarray
    mask: np.ndarray
    layout: Layout
    title: str = ""
    uncertainty: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.keypoint = np.asarray(self.keypoint, dtype=np.float64)
        self.mask = np.asarray(self.mask, dtype=bool)
        kp, m = self.keypoint, self.mask
        if kp.ndim == 3:  # (T, V, C): one person
            self.keypoint, self.mask = kp[None], (m[None] if m.ndim == 2 else m)
            kp, m = self.keypoint, self.mask
        if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
            raise FinetecError(f"a clip must be (M, T, V, C) with C = 2 or 3, got shape {kp.shape}")
        if m.shape != kp.shape[:3]:
            raise FinetecError(f"mask shape {m.shape} does not match keypoint shape {kp.shape}")
        if kp.shape[2] != self.layout.num_joints:
            raise FinetecError(
                f"clip has {kp.shape[2]} joints but layout {self.layout.name!r} has {self.layout.num_joints}")
        self.mask = m & np.isfinite(kp).all(axis=-1)
        if not self.mask.any():
            raise FinetecError("clip has no observed joint to draw")
        if self.uncertainty is not None:
            self.uncertainty = np.asarray(self.uncertainty, dtype=np.float64)
            if self.uncertainty.shape != self.mask.shape:
                raise FinetecError(f"uncertainty shape {self.uncertainty.shape} does not match the clip's "
                                   f"{self.mask.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.keypoint.shape[1])

    @property
    def dim(self) -> int:
        return int(self.keypoint.shape[3])

    @property
    def persons(self) -> list[int]:
        """Persons with at least one observed joint (padding persons are not drawn)."""
        return [p for p in range(self.mask.shape[0]) if self.mask[p].any()]


def as_clip_view(clip: Any, layout: Layout | str | None = None, title: str = "") -> ClipView:
    """A :class:`ClipView` from a Sample, a ``(keypoint, mask)`` pair or a ClipView."""
    if isinstance(clip, ClipView):
        if title and not clip.title:
            clip.title = title
        return clip
    if layout is None:
        raise FinetecError("a layout is needed to draw a clip")
    lay = get_layout(layout)
    if hasattr(clip, "keypoint") and hasattr(clip, "mask"):
        return ClipView(clip.keypoint, clip.mask, lay, title or str(getattr(clip, "id", "") or ""))
    if isinstance(clip, (tuple, list)) and len(clip) == 2:
        return ClipView(clip[0], clip[1], lay, title)
    raise FinetecError(f"cannot draw a {type(clip).__name__}: expected a Sample or (keypoint, mask)")


def _as_views(clips: Any, layout: Any, titles: Sequence[str] | None) -> list[ClipView]:
    single = isinstance(clips, ClipView) or hasattr(clips, "keypoint") or (
        isinstance(clips, tuple) and len(clips) == 2 and isinstance(clips[0], np.ndarray))
    items = [clips] if single else list(clips)
    if not items:
        raise FinetecError("no clip to draw")
    layouts = list(layout) if isinstance(layout, (list, tuple)) else [layout] * len(items)
    if len(layouts) != len(items):
        raise FinetecError(f"{len(items)} clips but {len(layouts)} layouts")
    if titles is not None and len(titles) != len(items):
        raise FinetecError(f"{len(items)} clips but {len(titles)} titles")
    return [as_clip_view(c, lay, titles[i] if titles else "") for i, (c, lay) in enumerate(zip(items, layouts))]


# -- frame bookkeeping -----------------------------------------------------------------------
def nearest_observed_index(observed: np.ndarray) -> np.ndarray:
    """For each position along the LAST axis, the index of the nearest observed position.

    observed: bool (..., T). Returns int (..., T): the latest observed index at or before t, or,
    where there is none, the earliest one after t; -1 where nothing is observed at all.
    """
    obs = np.asarray(observed, dtype=bool)
    T = obs.shape[-1]
    idx = np.broadcast_to(np.arange(T), obs.shape)
    prev = np.maximum.accumulate(np.where(obs, idx, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(obs, idx, T), axis=-1), axis=-1), axis=-1)
    out = np.where(prev >= 0, prev, nxt)
    return np.where(out >= T, -1, out)


def frame_states(mask: np.ndarray, reference_mask: np.ndarray | None = None) -> np.ndarray:
    """Per-frame state for the timeline: OBSERVED, PARTIAL, MISSING or RESTORED.

    mask: bool (M, T, V). Only persons with an observed joint count. ``reference_mask`` (M', T, V)
    marks frames as RESTORED where no joint was observed in the reference but one is here.
    Returns int (T,).
    """
    m = np.asarray(mask, dtype=bool)
    persons = m.reshape(m.shape[0], -1).any(axis=1)
    m = m[persons] if persons.any() else m
    any_obs = m.any(axis=(0, 2))
    all_obs = m.all(axis=(0, 2))
    states = np.where(all_obs, OBSERVED, np.where(any_obs, PARTIAL, MISSING))
    if reference_mask is not None:
        ref = np.asarray(reference_mask, dtype=bool)
        if ref.shape[1] == m.shape[1]:
            states = np.where(~ref.any(axis=(0, 2)) & any_obs, RESTORED, states)
    return states.astype(np.int64)


def animation_frames(num_frames: int, max_frames: int = DEFAULT_MAX_FRAMES) -> np.ndarray:
    """The clip frames an animation shows.

    Every frame when ``num_frames <= max_frames``; otherwise every k-th frame from frame 0 with
    ``k = ceil(num_frames / max_frames)`` (so at most ``max_frames`` frames).
    """
    if num_frames < 1:
        raise FinetecError("clip has no frames")
    if max_frames < 1:
        raise FinetecError(f"max_frames must be at least 1, got {max_frames}")
    step = max(1, math.ceil(num_frames / max_frames))
    return np.arange(0, num_frames, step)


def sheet_frames(num_frames: int, frames: int | Sequence[int] = DEFAULT_SHEET_FRAMES) -> np.ndarray:
    """Key frames of a contact sheet.

    An int ``n`` picks ``min(n, T)`` evenly spaced frames including the first and the last
    (``round(linspace(0, T - 1, n))``); a sequence gives the frame indices themselves (negative
    indices count from the end).
    """
    T = int(num_frames)
    if isinstance(frames, (int, np.integer)):
        n = int(frames)
        if n < 1:
            raise FinetecError(f"a contact sheet needs at least 1 frame, got {n}")
        if n >= T:
            return np.arange(T)
        return np.unique(np.round(np.linspace(0, T - 1, n)).astype(np.int64))
    idx = np.asarray(list(frames), dtype=np.int64)
    if idx.size == 0:
        raise FinetecError("no frame given for the contact sheet")
    bad = idx[(idx < -T) | (idx >= T)]
    if bad.size:
        raise FinetecError(f"frame {int(bad[0])} is outside the clip (0..{T - 1})")
    return idx % T


def sheet_size_px(num_frames: int, num_rows: int = 1, dpi: int = DEFAULT_DPI) -> tuple[int, int]:
    """(width, height) in pixels of a contact sheet with ``num_frames`` columns and ``num_rows`` clips."""
    w = num_frames * CELL_IN
    h = num_rows * (ROW_TITLE_IN + CELL_LABEL_IN + CELL_IN + STRIP_IN) + LEGEND_IN
    return int(round(w * dpi)), int(round(h * dpi))


def animation_size_px(num_panels: int = 1, dpi: int = DEFAULT_DPI) -> tuple[int, int]:
    """(width, height) in pixels of an animation with ``num_panels`` clips side by side."""
    return int(round(num_panels * PANEL_IN * dpi)), int(round((TITLE_IN + PANEL_IN + STRIP_IN + LEGEND_IN) * dpi))


# -- coordinates -----------------------------------------------------------------------------
def _up_vector(clip: ClipView) -> np.ndarray | None:
    """Mean (to - from) vector of the layout's up axis over frames where both groups are observed."""
    ax = clip.layout.up_axis
    if ax is None:
        return None
    a, b = list(ax[0]), list(ax[1])
    kp, m = clip.keypoint, clip.mask
    ok = m[:, :, a].all(axis=-1) & m[:, :, b].all(axis=-1)  # (M, T)
    if not ok.any():
        return None
    v = kp[:, :, b].mean(axis=2) - kp[:, :, a].mean(axis=2)  # (M, T, C)
    return v[ok].mean(axis=0)


def detect_y_down(clip: ClipView) -> bool:
    """Whether a 2D clip is in image coordinates (y grows downwards).

    Decided by the layout's up axis (e.g. hips -> shoulders): pointing to smaller y means y down.
    Without a usable up axis, clips whose observed coordinates are all non-negative and larger than
    2 (pixels) count as y down.
    """
    v = _up_vector(clip)
    if v is not None and abs(v[1]) > 1e-9:
        return bool(v[1] < 0)
    obs = clip.keypoint[clip.mask]
    return bool(obs.min() >= 0 and obs.max() > 2)


def _axes_3d(clip: ClipView) -> tuple[list[int], list[float]]:
    """Coordinate order and signs mapping data (x, y, z) to plot (across, depth, up)."""
    v = _up_vector(clip)
    if v is None or not np.any(np.abs(v) > 1e-9):
        up, sign = 1, 1.0  # Kinect / NTU convention: y up
    else:
        up = int(np.argmax(np.abs(v)))
        sign = 1.0 if v[up] > 0 else -1.0
    rest = [c for c in range(3) if c != up]
    return [rest[0], rest[1], up], [1.0, 1.0, sign]


def _project(clip: ClipView) -> np.ndarray:
    """(M, T, V, D) plotting coordinates (D = 2, or 3 as across/depth/up)."""
    if clip.dim == 2:
        return clip.keypoint.copy()
    order, signs = _axes_3d(clip)
    return clip.keypoint[..., order] * np.asarray(signs)


def _limits(points: np.ndarray) -> np.ndarray:
    """(D, 2) equal-range axis limits around ``points`` (n, D) with a 10 % margin."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo).max()) / 2, 1e-6) * 1.1
    if half < 1e-5:
        half = 1.0
    return np.stack([centre - half, centre + half], axis=1)


# -- drawing one panel -----------------------------------------------------------------------
class _Panel:
    """A skeleton panel: artists created once, updated per frame."""

    def __init__(self, ax: Any, clip: ClipView, *, show_mask: bool, y_down: bool | None,
                 reference_mask: np.ndarray | None, compact: bool = False) -> None:
        from matplotlib.collections import LineCollection

        self.ax, self.clip, self.show_mask = ax, clip, show_mask
        self.compact = compact
        self.P = _project(clip)
        self.D = self.P.shape[-1]
        lay = clip.layout
        self.edges = np.asarray(lay.edges, dtype=np.int64).reshape(-1, 2)
        reg = lay.region_index
        self.joint_colors = np.array([REGION_COLORS[REGION_NAMES[r]] for r in reg])
        self.edge_colors = self.joint_colors[self.edges[:, 0]] if len(self.edges) else np.array([])
        self.persons = clip.persons
        m = clip.mask
        self.person_src = {p: nearest_observed_index(m[p].any(axis=-1)) for p in self.persons}
        self.joint_src = {p: nearest_observed_index(m[p].T).T for p in self.persons}  # (T, V)
        self.restored = None
        if reference_mask is not None and reference_mask.shape[1:] == m.shape[1:]:
            ref = np.zeros_like(m)
            k = min(len(ref), len(reference_mask))
            ref[:k] = reference_mask[:k]
            self.restored = m & ~ref
        # restored joints shaded by the completion's uncertainty: tertiles of the clip's restored joints
        self.shade = None
        u = clip.uncertainty
        if self.restored is not None and u is not None and self.restored.any():
            cuts = np.quantile(u[self.restored], [1 / 3, 2 / 3])
            self.shade = np.digitize(u, cuts)                                    # 0 surest .. 2 least sure
        lim = _limits(self.P[m])
        ms, lw = (3.0, 1.2) if compact else (4.5, 2.0)
        if self.D == 3:
            from mpl_toolkits.mplot3d.art3d import Line3DCollection

            make_coll = lambda **kw: ax.add_collection3d(Line3DCollection([], **kw), autolim=False)  # noqa: E731
        else:
            make_coll = lambda **kw: ax.add_collection(LineCollection([], **kw), autolim=False)  # noqa: E731
        empty = [[]] * self.D
        self.art: dict[int, dict[str, Any]] = {}
        for i, p in enumerate(self.persons):
            mk = PERSON_MARKERS[i % len(PERSON_MARKERS)]
            a: dict[str, Any] = {
                "ghost": make_coll(colors=GHOST_COLOR, linewidths=lw, alpha=0.35, linestyles="dashed"),
                "bones": make_coll(linewidths=lw),
                "joints": {r: ax.plot(*empty, linestyle="none", marker=mk, markersize=ms,
                                      color=REGION_COLORS[r])[0] for r in REGION_NAMES},
                "ghost_joints": ax.plot(*empty, linestyle="none", marker=mk, markersize=ms,
                                        color=GHOST_COLOR, alpha=0.35)[0],
                "missing": ax.plot(*empty, linestyle="none", marker=mk, markersize=ms + 1.5,
                                   markerfacecolor="none", markeredgecolor=MISSING_COLOR,
                                   markeredgewidth=1.2)[0],
                "restored": ax.plot(*empty, linestyle="none", marker=mk, markersize=ms + 3.5,
                                    markerfacecolor="none", markeredgecolor=RESTORED_COLOR,
                                    markeredgewidth=1.0)[0],
                "restored_shades": [ax.plot(*empty, linestyle="none", marker=mk, markersize=ms + 3.5,
                                            markerfacecolor="none", markeredgecolor=RESTORED_COLOR,
                                            markeredgewidth=w, alpha=al)[0]
                                    for w, al in ((1.6, 1.0), (1.0, 0.55), (0.8, 0.25))],
            }
            self.art[p] = a
        kw = dict(ha="center", va="center", fontsize=9 if compact else 16, color=MISSING_COLOR,
                  fontweight="bold", alpha=0.8)
        self.label = (ax.text2D(0.5, 0.5, "", transform=ax.transAxes, **kw) if self.D == 3
                      else ax.text(0.5, 0.5, "", transform=ax.transAxes, **kw))
        if self.D == 3:  # limits last: creating artists must not rescale the axes
            ax.set_xlim(*lim[0]); ax.set_ylim(*lim[1]); ax.set_zlim(*lim[2])
            ax.set_box_aspect((1, 1, 1), zoom=1.25)
            ax.view_init(elev=12, azim=-70)
            ax.set_xticklabels([]); ax.set_yticklabels([]); ax.set_zticklabels([])
            order, signs = _axes_3d(clip)  # which data coordinate each plot axis shows
            names = [("-" if s < 0 else "") + "xyz"[o] for o, s in zip(order, signs)]
            fs, pad = (6, -14) if compact else (8, -10)
            ax.set_xlabel(names[0], fontsize=fs, labelpad=pad)
            ax.set_ylabel(names[1], fontsize=fs, labelpad=pad)
            ax.text2D(0.02, 0.98, f"{names[2]} (up)", transform=ax.transAxes, fontsize=fs, va="top")
        else:
            ax.set_xlim(*lim[0])
            ax.set_ylim(*(lim[1][::-1] if y_down else lim[1]))
            ax.set_aspect("equal", adjustable="box")
            ax.set_xticks([]); ax.set_yticks([])

    # data setters that work for 2D and 3D artists
    def _set_points(self, line: Any, pts: np.ndarray) -> None:
        pts = np.asarray(pts).reshape(-1, self.D)
        if self.D == 3:
            line.set_data_3d(pts[:, 0], pts[:, 1], pts[:, 2])
        else:
            line.set_data(pts[:, 0], pts[:, 1])

    def _bones(self, pose: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.edges):
            return np.zeros((0, 2, self.D)), np.array([])
        keep = ok[self.edges[:, 0]] & ok[self.edges[:, 1]]
        segs = np.stack([pose[self.edges[keep, 0]], pose[self.edges[keep, 1]]], axis=1)
        return segs, self.edge_colors[keep]

    def draw(self, t: int) -> int:
        """Draw clip frame ``t`` (clamped to the clip); returns the frame shown."""
        clip = self.clip
        t = int(min(max(t, 0), clip.num_frames - 1))
        m = clip.mask
        frame_missing = not m[:, t].any()
        for p in self.persons:
            a = self.art[p]
            obs = m[p, t]
            pose = self.P[p, t]
            segs, cols = self._bones(pose, obs)
            a["bones"].set_segments(list(segs))
            a["bones"].set_color(list(cols) if len(cols) else "k")
            reg = clip.layout.region_index
            for r, name in enumerate(REGION_NAMES):
                self._set_points(a["joints"][name], pose[obs & (reg == r)])
            g = int(self.person_src[p][t])
            if not obs.any() and g >= 0:
                gobs = m[p, g]
                gsegs, _ = self._bones(self.P[p, g], gobs)
                a["ghost"].set_segments(list(gsegs))
                self._set_points(a["ghost_joints"], self.P[p, g][gobs])
            else:
                a["ghost"].set_segments([])
                self._set_points(a["ghost_joints"], np.zeros((0, self.D)))
            hollow = np.zeros((0, self.D))
            ring = np.zeros((0, self.D))
            rings = [np.zeros((0, self.D))] * 3
            if self.show_mask and obs.any():
                src = self.joint_src[p][t]
                miss = ~obs & (src >= 0)
                hollow = self.P[p, src[miss], np.flatnonzero(miss)]
                if self.restored is not None and self.shade is not None:
                    rings = [pose[self.restored[p, t] & (self.shade[p, t] == k)] for k in range(3)]
                elif self.restored is not None:
                    ring = pose[self.restored[p, t]]
            self._set_points(a["missing"], hollow)
            self._set_points(a["restored"], ring)
            for line, pts in zip(a["restored_shades"], rings):
                self._set_points(line, pts)
        self.label.set_text("missing" if frame_missing else "")
        return t


def _timeline(ax: Any, states: np.ndarray) -> None:
    from matplotlib.colors import to_rgb

    colors = np.array([to_rgb(c) for c in STATE_COLORS])[states][None]
    ax.imshow(colors, aspect="auto", extent=(0, len(states), 0, 1), interpolation="nearest")
    ax.set_xlim(0, len(states)); ax.set_ylim(0, 1)
    ax.set_xticks([]); ax.set_yticks([])


def _state_name(state: int, restored_label: str = "restored") -> str:
    return restored_label if state == RESTORED else STATE_NAMES[state]


def _legend(fig: Any, width_in: float, states: Sequence[int], restored_label: str = "restored") -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=REGION_COLORS[r], label=r.replace("_", " ")) for r in REGION_NAMES]
    handles += [Patch(color=STATE_COLORS[s], label=f"{_state_name(s, restored_label)} frame")
                for s in sorted(set(states))]
    ncol = len(handles) if width_in >= 1.1 * len(handles) else math.ceil(len(handles) / 2)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=6.5, frameon=False,
               handlelength=1.0, columnspacing=0.8, borderaxespad=0.1)



def _reference_masks(views: list[ClipView]) -> list[np.ndarray | None]:
    ref = views[0].mask
    return [None] + [ref if v.mask.shape[1:] == ref.shape[1:] else None for v in views[1:]]


# -- public: skeleton drawings -----------------------------------------------------------------
def _animation_panels(fig: Any, views: list[ClipView], show_mask: bool, y_down: bool | None,
                      restored_label: str) -> tuple[list[_Panel], list[Any], list[bool | None]]:
    """One skeleton panel, timeline strip and frame cursor per clip, side by side, and the legend;
    returns (panels, cursors, y_down per clip)."""
    n = len(views)
    H = TITLE_IN + PANEL_IN + STRIP_IN + LEGEND_IN
    panels, cursors, all_states = [], [], []
    orientation: list[bool | None] = []
    for i, (v, ref) in enumerate(zip(views, _reference_masks(views))):
        rect = [(i * PANEL_IN + 0.15) / (n * PANEL_IN), (LEGEND_IN + STRIP_IN + 0.05) / H,
                (PANEL_IN - 0.3) / (n * PANEL_IN), (PANEL_IN - 0.1) / H]
        ax = fig.add_axes(rect, projection="3d" if v.dim == 3 else None)
        if v.dim == 3:
            ax.set_proj_type("ortho")
        yd = (detect_y_down(v) if y_down is None else y_down) if v.dim == 2 else None
        orientation.append(yd)
        panels.append(_Panel(ax, v, show_mask=show_mask, y_down=yd, reference_mask=ref))
        states = frame_states(v.mask, ref)
        all_states.extend(states.tolist())
        sax = fig.add_axes([(i * PANEL_IN + 0.15) / (n * PANEL_IN), (LEGEND_IN + 0.02) / H,
                            (PANEL_IN - 0.3) / (n * PANEL_IN), (STRIP_IN - 0.07) / H])
        _timeline(sax, states)
        cursors.append(sax.axvline(0.5, color="black", linewidth=1.5))
    _legend(fig, n * PANEL_IN, all_states, restored_label)
    return panels, cursors, orientation


def render_clip(
    clips: Any,
    layout: Layout | str | Sequence[Layout | str] | None,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    fps: float = DEFAULT_FPS,
    show_mask: bool = False,
    y_down: bool | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    dpi: int = DEFAULT_DPI,
    restored_label: str = "restored",
) -> dict[str, Any]:
    """Animate one clip, or several side by side, to ``.gif`` (Pillow) or ``.mp4`` (ffmpeg).

    clips: a Sample, a ``(keypoint (M,T,V,C), mask (M,T,V))`` pair, a :class:`ClipView`, or a list of
    them (panels left to right; the first is the reference that later panels' "restored" frames
    and joints are measured against). layout: one layout, or one per clip. y_down: ``None`` detects
    image coordinates per 2D clip. The animation shows :func:`animation_frames` of the longest clip;
    shorter clips hold their last frame. ``.png`` output is a :func:`contact_sheet`.
    restored_label: the legend's name for frames missing in the first clip and observed in a later
    one ("restored" for a completion, "clean reference" for the clean clip).

    Returns ``{"path", "frames" (number of frames written), "size" (width, height), "y_down"
    (per clip: True for 2D image coordinates drawn flipped upright, False for 2D y-up, None for 3D)}``.
    """
    out = Path(path)
    suffix = _check_suffix(out, SKELETON_SUFFIXES)
    if suffix == ".png":
        return contact_sheet(clips, layout, out, titles=titles, show_mask=show_mask, y_down=y_down, dpi=dpi,
                             restored_label=restored_label)
    if not fps > 0:
        raise FinetecError(f"fps must be positive, got {fps}")
    import matplotlib.animation as animation

    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        raise FinetecError("writing .mp4 needs ffmpeg, which is not installed; write a .gif instead", out)
    views = _as_views(clips, layout, titles)
    T = max(v.num_frames for v in views)
    shown = animation_frames(T, max_frames)
    n = len(views)
    fig = _new_figure(n * PANEL_IN, TITLE_IN + PANEL_IN + STRIP_IN + LEGEND_IN, dpi)
    panels, cursors, orientation = _animation_panels(fig, views, show_mask, y_down, restored_label)
    writer = (animation.PillowWriter(fps=fps) if suffix == ".gif"
              else animation.FFMpegWriter(fps=fps, codec="h264", extra_args=[
                  "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2"]))  # h264: even sizes
    with atomic_path(out) as tmp:
        with writer.saving(fig, str(tmp), dpi):
            for t in shown:
                for v, panel, cur in zip(views, panels, cursors):
                    shown_t = panel.draw(int(t))
                    cur.set_xdata([shown_t + 0.5, shown_t + 0.5])
                    panel.ax.set_title(f"{v.title}\nframe {shown_t + 1}/{v.num_frames}".lstrip("\n"),
                                       fontsize=9)
                writer.grab_frame()
    return {"path": out, "frames": int(len(shown)), "size": animation_size_px(n, dpi), "y_down": orientation}


def contact_sheet(
    clips: Any,
    layout: Layout | str | Sequence[Layout | str] | None,
    path: str | os.PathLike,
    *,
    frames: int | Sequence[int] = DEFAULT_SHEET_FRAMES,
    titles: Sequence[str] | None = None,
    show_mask: bool = False,
    y_down: bool | None = None,
    dpi: int = DEFAULT_DPI,
    restored_label: str = "restored",
) -> dict[str, Any]:
    """A grid of key frames: one row per clip, one column per frame (:func:`sheet_frames` of the
    first clip; shorter clips show their last frame). Each row has a timeline strip with the
    chosen frames ticked. Image size: :func:`sheet_size_px`. Output format by suffix (``.png``,
    ``.pdf``, ``.svg``). Cells number frames from 1 (index t is "frame t+1/T"); restored_label as
    in :func:`render_clip`.

    Returns ``{"path", "frames" (the frame indices), "size" (width, height), "y_down" (per clip, as
    in :func:`render_clip`)}``.
    """
    out = Path(path)
    _check_suffix(out, PLOT_SUFFIXES)
    views = _as_views(clips, layout, titles)
    idx = sheet_frames(views[0].num_frames, frames)
    cols, rows = len(idx), len(views)
    W = cols * CELL_IN
    row_h = ROW_TITLE_IN + CELL_LABEL_IN + CELL_IN + STRIP_IN
    H = rows * row_h + LEGEND_IN
    fig = _new_figure(W, H, dpi)
    all_states: list[int] = []
    orientation: list[bool | None] = []
    for r, (v, ref) in enumerate(zip(views, _reference_masks(views))):
        top = H - r * row_h  # inches from the bottom to the top of this row
        if v.title:
            fig.text(0.01, (top - ROW_TITLE_IN / 2) / H, v.title, ha="left", va="center", fontsize=9,
                     fontweight="bold")
        yd = (detect_y_down(v) if y_down is None else y_down) if v.dim == 2 else None
        orientation.append(yd)
        states = frame_states(v.mask, ref)
        all_states.extend(states.tolist())
        cell_bottom = top - ROW_TITLE_IN - CELL_LABEL_IN - CELL_IN
        for c, t in enumerate(idx):
            rect = [(c * CELL_IN + 0.05) / W, (cell_bottom + 0.03) / H, (CELL_IN - 0.1) / W, (CELL_IN - 0.06) / H]
            ax = fig.add_axes(rect, projection="3d" if v.dim == 3 else None)
            if v.dim == 3:
                ax.set_proj_type("ortho")
            panel = _Panel(ax, v, show_mask=show_mask, y_down=yd, reference_mask=ref, compact=True)
            shown = panel.draw(int(t))
            label = f"frame {shown + 1}/{v.num_frames}"
            if states[shown] != OBSERVED:
                label += f" ({_state_name(states[shown], restored_label)})"
            fig.text((c * CELL_IN + CELL_IN / 2) / W, (cell_bottom + CELL_IN + CELL_LABEL_IN / 2) / H, label,
                     ha="center", va="center", fontsize=7,
                     color=MISSING_COLOR if states[shown] == MISSING else "black")
            panel.label.set_text("")  # the cell label already says it
        sax = fig.add_axes([0.05 / W, (cell_bottom - STRIP_IN + 0.05) / H, (W - 0.1) / W, (STRIP_IN - 0.1) / H])
        _timeline(sax, states)
        for t in idx:
            sax.axvline(min(int(t), v.num_frames - 1) + 0.5, color="black", linewidth=1.0)
    _legend(fig, W, all_states, restored_label)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lower().lstrip("."))
    return {"path": out, "frames": [int(t) for t in idx], "size": sheet_size_px(cols, rows, dpi),
            "y_down": orientation}


__all__ = ["REGION_COLORS", "OBSERVED", "PARTIAL", "MISSING", "RESTORED", "MISSING_COLOR", "RESTORED_COLOR", "GHOST_COLOR", "PERSON_MARKERS", "STATE_NAMES", "STATE_COLORS",
           "PANEL_IN", "TITLE_IN", "STRIP_IN", "LEGEND_IN", "CELL_IN", "ROW_TITLE_IN", "CELL_LABEL_IN",
           "DEFAULT_FPS", "DEFAULT_MAX_FRAMES", "DEFAULT_SHEET_FRAMES", "DEFAULT_DPI", "ClipView",
           "as_clip_view", "nearest_observed_index", "frame_states", "animation_frames", "sheet_frames",
           "sheet_size_px", "animation_size_px", "detect_y_down", "render_clip", "contact_sheet"]

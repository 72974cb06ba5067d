"""Drawing a layout (``finetec layout check``).

:func:`draw_layout` writes a PNG with one or two panels:

- **the graph**: every joint (index and name, coloured by region) placed as a tree hanging from the
  root, bones drawn child -> parent as arrows, centre joints ringed, flip pairs joined by dotted
  lines, the up and across axes drawn as labelled arrows between their joint groups;
- **on data** (when a clip is given): the same joints, names and bones on one frame of a real clip
  (the frame with the most observed joints), with the up and across axes. A layout whose joint
  order is not the data's shows here as names on the wrong body parts and crossing bones.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from finetec.fileio import atomic_path
from finetec.layouts import REGION_NAMES, Layout
from finetec.viz.skeleton import REGION_COLORS, ClipView, _project, detect_y_down

# Left to right in the graph panel: the person faces the viewer, so their right is on the left.
_ORDER = ("right_arm", "right_leg", "head_torso", "left_leg", "left_arm")


def tree_positions(layout: Layout) -> np.ndarray:
    """(V, 2) positions of the joints as a tree hanging from the root (leaves evenly spaced)."""
    V = layout.num_joints
    children: dict[int, list[int]] = {v: [] for v in range(V)}
    for c, p in layout.edges:
        children[p].append(c)
    region = layout.region_index
    rank = {r: i for i, r in enumerate(_ORDER)}
    pos = np.zeros((V, 2))
    next_leaf = [0.0]

    def place(v: int, depth: int) -> float:
        kids = sorted(children[v], key=lambda c: (rank[REGION_NAMES[region[c]]], c))
        if kids:
            xs = [place(c, depth + 1) for c in kids]
            x = float(np.mean(xs))
        else:
            x = next_leaf[0]
            next_leaf[0] += 1.0
        pos[v] = (x, -depth)
        return x

    place(layout.root, 0)
    return pos


def _group_mean(pts: np.ndarray, g: tuple[int, ...]) -> np.ndarray:
    return pts[list(g)].mean(axis=0)


def _draw_graph(ax: Any, layout: Layout, pts: np.ndarray, *, arrows: bool, observed: np.ndarray | None = None,
                fontsize: float = 7.0) -> None:
    from matplotlib.patches import FancyArrowPatch


    colors = [REGION_COLORS[REGION_NAMES[r]] for r in layout.region_index]
    ok = np.ones(layout.num_joints, dtype=bool) if observed is None else observed
    for a, b in layout.flip_pairs:
        if ok[a] and ok[b]:
            ax.plot(*zip(pts[a], pts[b]), linestyle=":", color="#bbbbbb", linewidth=0.8, zorder=1)
    for c, p in layout.edges:
        if not (ok[c] and ok[p]):
            continue
        if arrows:
            ax.add_patch(FancyArrowPatch(pts[c], pts[p], arrowstyle="-|>", mutation_scale=8, color=colors[c],
                                         linewidth=1.4, shrinkA=6, shrinkB=6, zorder=2))
        else:
            ax.plot(*zip(pts[c], pts[p]), color=colors[c], linewidth=2.0, zorder=2)
    for v in range(layout.num_joints):
        if not ok[v]:
            continue
        ax.plot(*pts[v], marker="o", markersize=6, color=colors[v], zorder=3)
        if v in layout.center:
            ax.plot(*pts[v], marker="o", markersize=13, markerfacecolor="none", markeredgecolor="black",
                    markeredgewidth=1.2, zorder=3)
        ax.annotate(f"{v} {layout.joints[v]}", pts[v], xytext=(4, 3), textcoords="offset points",
                    fontsize=fontsize, color=colors[v], zorder=4)
    for name, axis, color in (("up", layout.up_axis, "#d62728"), ("across", layout.across_axis, "#17becf")):
        if axis is None or not (ok[list(axis[0])].all() and ok[list(axis[1])].all()):
            continue
        a, b = _group_mean(pts, axis[0]), _group_mean(pts, axis[1])
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color=color, linewidth=2.2,
                                     alpha=0.6, connectionstyle="arc3,rad=0.25" if arrows else "arc3",
                                     zorder=5))
        ax.annotate(f"{name}_axis", a + 0.35 * (b - a), fontsize=fontsize + 1, color=color, fontweight="bold",
                    ha="center", va="center", zorder=6,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})


def pose_frame(keypoint: np.ndarray, mask: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray, str]:
    """(V, 2) plotting coordinates, (V,) observed, and a caption, for the frame of a clip
    (M, T, V, C) with the most observed joints (first person seen); 3D is shown facing the viewer
    with the layout's up direction vertical, 2D image coordinates (y down) upright."""

    counts = mask.sum(axis=2)                                         # (M, T)
    p, t = np.unravel_index(int(np.argmax(counts)), counts.shape)
    view = ClipView(keypoint[p:p + 1, t:t + 1], mask[p:p + 1, t:t + 1], layout)
    pts = _project(view)[0, 0]
    caption = f"person {p}, frame {t + 1}"
    if pts.shape[-1] == 3:
        pts = pts[:, [0, 2]]                                          # across, up
    elif detect_y_down(view):
        pts = pts * np.array([1.0, -1.0])
        caption += ", image y down drawn upright"
    return pts, view.mask[0, 0], caption


def draw_layout(layout: Layout, out: str | os.PathLike, clip: tuple[np.ndarray, np.ndarray, str] | None = None,
                dpi: int = 100) -> Path:
    """Write the layout drawing (see the module docstring) to ``out`` (a .png), atomically.

    ``clip``: optional (keypoint (M, T, V, C), mask (M, T, V), title) to draw the layout on.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D


    out = Path(out)
    panels = 2 if clip is not None else 1
    width = max(6.0, 0.45 * layout.num_joints)
    fig = Figure(figsize=(width * panels, width * 0.85))
    ax = fig.add_subplot(1, panels, 1)
    pts = tree_positions(layout)
    _draw_graph(ax, layout, pts, arrows=True)
    ax.set_title(f"layout {layout.name}: bones child -> parent from root {layout.joints[layout.root]}; "
                 "ringed: center", fontsize=9)
    span = np.ptp(pts, axis=0)
    ax.set_xlim(pts[:, 0].min() - 0.6, pts[:, 0].max() + 0.6 + 0.15 * span[0])
    ax.set_ylim(pts[:, 1].min() - 0.6, 0.6)
    ax.set_axis_off()
    if clip is not None:
        kp, mk, title = clip
        P, ok, caption = pose_frame(kp, mk, layout)
        ax2 = fig.add_subplot(1, 2, 2)
        _draw_graph(ax2, layout, P, arrows=False, observed=ok)
        ax2.set_aspect("equal", adjustable="datalim")
        ax2.set_title(f"on {title} ({caption})", fontsize=9)
        ax2.set_xticks([]); ax2.set_yticks([])
    handles = [Line2D([], [], color=REGION_COLORS[r], marker="o", linewidth=2, label=r) for r in REGION_NAMES]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return out

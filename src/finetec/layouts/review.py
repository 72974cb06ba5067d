"""Reviewing a layout for likely mistakes (``finetec layout check``).

:func:`review_layout` lists what is valid but probably wrong (a flip pair that does not join a
left and a right joint, a region that is not connected, no up axis); :func:`describe_layout`
summarises a layout in a few lines. The drawing is :func:`finetec.viz.layout_figure.draw_layout`.
"""
from __future__ import annotations

from finetec.layouts import REGION_NAMES, Layout, builtin_layouts, find_joint_map


def review_layout(layout: Layout) -> list[str]:
    """Warnings (one line each) about a valid layout that is probably not what its author meant."""
    out = []
    J = layout.joints
    for a, b in layout.flip_pairs:
        na, nb = J[a].lower(), J[b].lower()
        if not (("left" in na and "right" in nb) or ("right" in na and "left" in nb)):
            out.append(f"flip_pairs: {J[a]} <-> {J[b]} does not pair a left and a right joint by name")
    parents = dict(layout.edges)
    for r in REGION_NAMES:
        members = set(layout.regions[r])
        tops = [j for j in members if parents.get(j) not in members]
        if len(tops) > 1:
            out.append(f"regions.{r}: not one connected chain of bones (starts at {', '.join(J[j] for j in tops)})")
    for side in ("left", "right"):
        for limb in ("arm", "leg"):
            r = f"{side}_{limb}"
            other = "right" if side == "left" else "left"
            wrong = [J[j] for j in layout.regions[r] if other in J[j].lower()]
            if wrong:
                out.append(f"regions.{r}: holds {', '.join(wrong)}, named for the {other} side")
    if layout.up_axis is None:
        out.append("up_axis: not set; 2D clips are then scaled by their spread instead of the torso "
                   "length, and views are not aligned")
    if layout.across_axis is None:
        out.append("across_axis: not set; 3D views cannot be turned to face the camera")
    return out


def describe_layout(layout: Layout) -> list[str]:
    """A few lines summarising a layout in words."""
    J = layout.joints

    def group(g: tuple[int, ...]) -> str:
        return "+".join(J[j] for j in g)

    lines = [f"{layout.num_joints} joints, {len(layout.edges)} bones, root {J[layout.root]}",
             f"center: {group(layout.center)}",
             "regions: " + ", ".join(f"{r} ({len(layout.regions[r])})" for r in REGION_NAMES),
             f"flip pairs: {len(layout.flip_pairs)}"]
    for name, ax in (("up_axis", layout.up_axis), ("across_axis", layout.across_axis)):
        lines.append(f"{name}: " + ("not set" if ax is None else f"{group(ax[0])} -> {group(ax[1])}"))
    for target in layout.maps:   # a map onto a built-in layout is checked against it
        if target in builtin_layouts():
            m = find_joint_map(layout, target)
            lines.append(f"joint map onto {target}: {len(m.sources) - len(m.unsupplied)} of {len(m.sources)} "
                         f"joints supplied" + (f" (missing: {', '.join(m.unsupplied)})" if m.unsupplied else ""))
        else:
            lines.append(f"joint map onto {target} (not a built-in layout: checked when used)")
    return lines


__all__ = ["describe_layout", "review_layout"]

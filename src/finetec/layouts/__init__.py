"""Skeleton layouts as data.

A :class:`Layout` names the joints of a skeleton, its bones (child -> parent edges forming a
tree), the joints whose mean is the body centre, the five FineTec regions (every joint in exactly
one), the left/right flip pairs and, optionally, the joint groups that define the body's up and
across directions (used to align 3D views).

A layout may also carry **joint maps** (its ``maps`` field): how to build the joints of another
layout from its own, e.g. ``coco17`` says how a COCO-17 clip becomes a ``penn13`` clip (the head
is the nose, the eyes and ears are dropped). :func:`find_joint_map` finds the map between two
layouts and :meth:`JointMap.apply` moves keypoints and masks through it; a joint that the map
cannot supply is missing in the mask, never a zero taken for a position. A user adds a map to
their own layout file the same way (``docs/layouts.md``, "Joint maps").

Built-in layouts are JSON files in this folder; a user layout is a JSON or YAML file with the same
fields (joints may be referred to by index or by name). ``get_layout(name_or_path)`` returns either;
``docs/layouts.md`` is the guide to writing one.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetec.errors import FinetecError

REGION_NAMES: tuple[str, ...] = ("head_torso", "left_arm", "right_arm", "left_leg", "right_leg")
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class Layout:
    """A skeleton layout. Joint indices are 0-based."""

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]          # (child, parent)
    center: tuple[int, ...]                     # joints averaged to get the body centre
    regions: dict[str, tuple[int, ...]]         # the five FineTec regions
    flip_pairs: tuple[tuple[int, int], ...]     # (left, right) or (right, left) pairs swapped by a flip
    up_axis: tuple[tuple[int, ...], tuple[int, ...]] | None = None      # from-joints -> to-joints
    across_axis: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # right -> left side
    description: str = ""
    source: str = ""
    # joint maps onto other layouts: {target layout name: {target joint name: source joints}}; the
    # target joint is the mean of its source joints, () = missing. Not part of the layout's identity.
    maps: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived structure -------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def parents(self) -> np.ndarray:
        """(V,) int: parent of each joint; the root is its own parent."""
        p = np.arange(self.num_joints)
        for c, q in self.edges:
            p[c] = q
        return p

    @property
    def root(self) -> int:
        children = {c for c, _ in self.edges}
        return next(v for v in range(self.num_joints) if v not in children)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(V,) int: the joint order after a left/right flip."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    @property
    def region_index(self) -> np.ndarray:
        """(V,) int: the region (index into REGION_NAMES) of each joint."""
        out = np.empty(self.num_joints, dtype=np.int64)
        for r, name in enumerate(REGION_NAMES):
            out[list(self.regions[name])] = r
        return out

    def index(self, joint: str | int) -> int:
        if isinstance(joint, (int, np.integer)):
            return int(joint)
        try:
            return self.joints.index(joint)
        except ValueError:
            raise FinetecError(f"layout {self.name!r} has no joint named {joint!r}") from None

    def adjacency(self) -> np.ndarray:
        """(3, V, V) float32 spatial-partition adjacency: identity, inward, outward.

        ``A[k, v, w]`` is the weight with which joint ``v`` contributes to joint ``w``. Inward edges
        carry child -> parent, outward parent -> child; each is normalised so that the weights
        arriving at a joint sum to one (ST-GCN's spatial configuration partitioning).
        """
        if "adjacency" not in self._cache:
            V = self.num_joints
            inward = np.zeros((V, V), dtype=np.float64)
            for c, p in self.edges:
                inward[c, p] = 1.0
            outward = inward.T.copy()
            A = np.stack([np.eye(V), _normalise_columns(inward), _normalise_columns(outward)])
            self._cache["adjacency"] = A.astype(np.float32)
        return self._cache["adjacency"].copy()

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "description": self.description,
            "joints": list(self.joints),
            "edges": [list(e) for e in self.edges],
            "center": list(self.center),
            "regions": {k: list(v) for k, v in self.regions.items()},
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "up_axis": None if self.up_axis is None else [list(a) for a in self.up_axis],
            "across_axis": None if self.across_axis is None else [list(a) for a in self.across_axis],
            "source": self.source,
        }
        if self.maps:
            d["maps"] = {t: {j: None if not src else self.joints[src[0]] if len(src) == 1
                                 else [self.joints[i] for i in src]
                             for j, src in m.items()} for t, m in self.maps.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "<layout>") -> "Layout":
        if not isinstance(d, dict):
            raise FinetecError("a layout must be a mapping with joints, edges, center, regions", origin)
        missing = [k for k in ("name", "joints", "edges", "center", "regions") if k not in d]
        if missing:
            raise FinetecError(f"layout is missing field(s): {', '.join(missing)}", origin)
        if not isinstance(d["joints"], (list, tuple)):
            raise FinetecError("joints: must be a list of joint names", origin)
        joints = tuple(str(j) for j in d["joints"])
        if len(set(joints)) != len(joints):
            dup = sorted({j for j in joints if joints.count(j) > 1})
            raise FinetecError(f"joints: names are not unique ({', '.join(dup)})", origin)

        def idx(j: Any, where: str) -> int:
            if isinstance(j, str):
                if j not in joints:
                    raise FinetecError(f"{where}: unknown joint name {j!r}", origin)
                return joints.index(j)
            if isinstance(j, bool) or not isinstance(j, int):
                raise FinetecError(f"{where}: joint reference {j!r} is neither an index nor a name", origin)
            return j

        def group(g: Any, where: str) -> tuple[int, ...]:
            return tuple(idx(j, where) for j in (g if isinstance(g, (list, tuple)) else [g]))

        def pairs(items: Any, where: str) -> tuple[tuple[int, int], ...]:
            if not isinstance(items, (list, tuple)):
                raise FinetecError(f"{where}: must be a list of [joint, joint] pairs", origin)
            out = []
            for item in items:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise FinetecError(f"{where}: {item!r} is not a [joint, joint] pair", origin)
                out.append((idx(item[0], where), idx(item[1], where)))
            return tuple(out)

        def axis(a: Any, where: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
            if a is None:
                return None
            if not isinstance(a, (list, tuple)) or len(a) != 2:
                raise FinetecError(f"{where}: an axis must be [from-joints, to-joints]", origin)
            return (group(a[0], where), group(a[1], where))

        def maps(m: Any) -> dict[str, dict[str, tuple[int, ...]]]:
            if m is None:
                return {}
            if not isinstance(m, dict):
                raise FinetecError("maps: must be a mapping {target layout name: {target joint: source joint}}",
                                   origin)
            out: dict[str, dict[str, tuple[int, ...]]] = {}
            for target, table in m.items():
                where = f"maps.{target}"
                if not isinstance(table, dict) or not table:
                    raise FinetecError(f"{where}: must be a mapping {{target joint: source joint, a list of "
                                       "source joints (their mean) or null (missing)}}", origin)
                out[str(target)] = {str(j): () if src is None else group(src, f"{where}.{j}")
                                    for j, src in table.items()}
            return out

        regions = d["regions"]
        if not isinstance(regions, dict):
            raise FinetecError(f"regions: must be a mapping {{region name: joints}} with the names "
                               f"{', '.join(REGION_NAMES)}", origin)
        try:
            layout = cls(
                name=str(d["name"]),
                joints=joints,
                edges=pairs(d["edges"], "edges"),
                center=group(d["center"], "center"),
                regions={str(k): group(v, f"regions.{k}") for k, v in regions.items()},
                flip_pairs=pairs(d.get("flip_pairs") or [], "flip_pairs"),
                up_axis=axis(d.get("up_axis"), "up_axis"),
                across_axis=axis(d.get("across_axis"), "across_axis"),
                description=str(d.get("description", "")),
                source=str(d.get("source", "")),
            )
            # the maps after the skeleton itself, so that a broken skeleton is reported as such
            return dataclasses.replace(layout, maps=maps(d.get("maps"))) if d.get("maps") is not None else layout
        except FinetecError as e:
            raise FinetecError(e.problem, origin) from None
        except (TypeError, ValueError) as e:
            raise FinetecError(f"malformed layout: {e}", origin) from None

    @classmethod
    def from_json(cls, text: str, origin: str = "<layout>") -> "Layout":
        return cls.from_dict(json.loads(text), origin)


def _normalise_columns(A: np.ndarray) -> np.ndarray:
    deg = A.sum(axis=0)
    return A / np.where(deg > 0, deg, 1.0)[None, :]


def _validate(layout: Layout) -> None:
    """FinetecError naming the field at fault (``edges: ...``) when ``layout`` is not usable."""
    V = len(layout.joints)
    where = f"layout {layout.name!r}"
    if V < 2:
        raise FinetecError(f"{where}: joints: needs at least 2 joints")
    if len(set(layout.joints)) != V:
        dup = sorted({j for j in layout.joints if layout.joints.count(j) > 1})
        raise FinetecError(f"{where}: joints: names are not unique ({', '.join(dup)})")

    def check(j: int, what: str) -> None:
        if not 0 <= j < V:
            raise FinetecError(f"{where}: {what}: refers to joint {j}, outside 0..{V - 1}")

    children = [c for c, _ in layout.edges]
    for c, p in layout.edges:
        check(c, "edges")
        check(p, "edges")
        if c == p:
            raise FinetecError(f"{where}: edges: ({c}, {p}) is a self-loop")
    if len(set(children)) != len(children):
        twice = sorted({layout.joints[c] for c in children if children.count(c) > 1})
        raise FinetecError(f"{where}: edges: must form a tree (one parent per joint; "
                           f"{', '.join(twice)} has more than one)")
    if len(layout.edges) != V - 1:
        raise FinetecError(f"{where}: edges: must form a tree ({V - 1} child -> parent edges for {V} "
                           f"joints, got {len(layout.edges)})")
    parents = dict(layout.edges)
    for v in range(V):  # every joint reaches the root without a cycle
        seen, u = set(), v
        while u in parents:
            if u in seen:
                raise FinetecError(f"{where}: edges: must form a tree, they contain a cycle through "
                                   f"joint {layout.joints[v]!r}")
            seen.add(u)
            u = parents[u]
    if not layout.center:
        raise FinetecError(f"{where}: center: needs at least one joint")
    for j in layout.center:
        check(j, "center")
    if set(layout.regions) != set(REGION_NAMES):
        odd = sorted(set(layout.regions) ^ set(REGION_NAMES))
        raise FinetecError(f"{where}: regions: must be exactly {', '.join(REGION_NAMES)} "
                           f"(wrong or missing: {', '.join(odd)})")
    members = [j for r in REGION_NAMES for j in layout.regions[r]]
    for r in REGION_NAMES:
        for j in layout.regions[r]:
            check(j, f"regions.{r}")
    if any(len(layout.regions[r]) == 0 for r in REGION_NAMES):
        empty = [r for r in REGION_NAMES if not layout.regions[r]]
        raise FinetecError(f"{where}: regions: every region needs at least one joint ({', '.join(empty)} "
                           "is empty)")
    if sorted(members) != list(range(V)):
        bad = sorted({layout.joints[j] for j in range(V) if members.count(j) != 1})
        raise FinetecError(f"{where}: regions: every joint must be in exactly one region "
                           f"(not so for {', '.join(bad)})")
    flat = [j for p in layout.flip_pairs for j in p]
    for j in flat:
        check(j, "flip_pairs")
    if len(set(flat)) != len(flat):
        raise FinetecError(f"{where}: flip_pairs: a joint appears in more than one flip pair")
    for name, ax in (("up_axis", layout.up_axis), ("across_axis", layout.across_axis)):
        if ax is not None:
            if not ax[0] or not ax[1]:
                raise FinetecError(f"{where}: {name}: needs at least one joint on each end")
            for j in ax[0] + ax[1]:
                check(j, name)
            if set(ax[0]) == set(ax[1]):
                raise FinetecError(f"{where}: {name}: goes from and to the same joint(s), so it has no "
                                   "direction")
    for target, table in layout.maps.items():
        for j, src in table.items():
            for i in src:
                check(i, f"maps.{target}.{j}")
            if len(set(src)) != len(src):
                raise FinetecError(f"{where}: maps.{target}.{j}: names a source joint twice")


def builtin_layouts() -> list[str]:
    """Names of the built-in layouts."""
    return sorted(p.stem for p in _HERE.glob("*.json"))


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> Layout:
    path = _HERE / f"{name}.json"
    return Layout.from_json(path.read_text(encoding="utf-8"), origin=str(path))


def load_layout_file(path: str | Path) -> Layout:
    """Read a user layout from a JSON or YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise FinetecError(f"cannot read layout file: {e.strerror}", p) from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise FinetecError(f"not a valid layout file ({type(e).__name__}: {str(e).splitlines()[0]})", p) from None
    return Layout.from_dict(data, origin=str(p))


def _looks_like_path(s: str) -> bool:
    return s.lower().endswith((".json", ".yaml", ".yml")) or "/" in s or "\\" in s


def get_layout(name_or_path: "str | Path | Layout", relative_to: "str | Path | None" = None) -> Layout:
    """A built-in layout by name, or a user layout from a ``.json`` / ``.yaml`` path.

    ``relative_to``: the data file that names the layout; a relative path is resolved against its
    folder (not the current one), so a dataset and its layout file can move together.
    """
    if isinstance(name_or_path, Layout):
        return name_or_path
    s = str(name_or_path)
    if s in builtin_layouts():
        return _builtin(s)
    if _looks_like_path(s):
        p = Path(s).expanduser()
        if relative_to is not None and not p.is_absolute():
            p = Path(relative_to).parent / p
        if not p.is_file():
            where = f" (looked for {p})" if str(p) != s else ""
            raise FinetecError(f"layout file {s!r} not found{where}")
        return load_layout_file(p)
    raise FinetecError(f"unknown layout {s!r}: not a built-in layout ({', '.join(builtin_layouts())}) "
                       "nor a path to a .json / .yaml layout file")


def layouts_with_joints(num_joints: int) -> list[str]:
    """The built-in layouts with ``num_joints`` joints (the candidates when a file does not say)."""
    return [n for n in builtin_layouts() if _builtin(n).num_joints == num_joints]


# -- joint maps ----------------------------------------------------------------------------
@dataclass(frozen=True)
class JointMap:
    """How to build the joints of ``target`` from those of ``source``.

    ``sources[v]`` are the source joints whose mean is target joint ``v``; the target joint is
    observed only where all of them are. An empty tuple: the source cannot supply that joint,
    so it is always missing (its mask False, its coordinates 0)."""

    source: Layout
    target: Layout
    sources: tuple[tuple[int, ...], ...]

    @property
    def identity(self) -> bool:
        return self.source.num_joints == self.target.num_joints and \
            self.sources == tuple((v,) for v in range(self.target.num_joints))

    @property
    def unsupplied(self) -> list[str]:
        """Names of the target joints that the map leaves missing."""
        return [self.target.joints[v] for v, src in enumerate(self.sources) if not src]

    def apply(self, keypoint: np.ndarray, mask: np.ndarray | None = None,
              score: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """keypoint (..., V_source, C), mask (..., V_source) (default: finite coordinates), score
        (..., V_source) or None -> the same arrays over the target's joints. Coordinates are
        float32 and 0 wherever the mapped mask is False; a mapped score is the lowest of its
        sources' scores."""
        kp = np.asarray(keypoint, dtype=np.float32)
        if kp.ndim < 2 or kp.shape[-2] != self.source.num_joints:
            raise FinetecError(f"joint map {self.source.name} -> {self.target.name}: expected "
                               f"{self.source.num_joints} joints, the data have shape {kp.shape}")
        m = np.isfinite(kp).all(-1) if mask is None else np.asarray(mask, dtype=bool)
        shape = kp.shape[:-2] + (self.target.num_joints,)
        out = np.zeros(shape + kp.shape[-1:], dtype=np.float32)
        out_m = np.zeros(shape, dtype=bool)
        out_s = None if score is None else np.zeros(shape, dtype=np.float32)
        for v, src in enumerate(self.sources):
            if not src:
                continue
            idx = list(src)
            ok = m[..., idx].all(-1)
            val = kp[..., idx[0], :] if len(idx) == 1 else kp[..., idx, :].mean(-2)
            out[..., v, :] = np.where(ok[..., None], val, 0.0)
            out_m[..., v] = ok
            if out_s is not None:
                out_s[..., v] = np.where(ok, np.asarray(score)[..., idx].min(-1), 0.0)
        return out, out_m, out_s

    def describe(self) -> str:
        """One line per target joint: ``target <- source`` (``missing`` when unsupplied)."""
        rows = []
        for v, src in enumerate(self.sources):
            what = " + ".join(self.source.joints[i] for i in src) if src else "missing"
            rows.append(f"{self.target.joints[v]} <- {what}" + (" (mean)" if len(src) > 1 else ""))
        return "\n".join(rows)


def _declared_maps(layout: Layout) -> dict[str, dict[str, tuple[int, ...]]]:
    """The maps of ``layout``, or, for a stored copy of a built-in layout (in a checkpoint or a
    dataset file) that carries none, those of the built-in one."""
    if layout.maps:
        return layout.maps
    if layout.name in builtin_layouts():
        builtin = _builtin(layout.name)
        if builtin.joints == layout.joints:
            return builtin.maps
    return {}


def layouts_mapping_onto(target: Layout | str) -> list[str]:
    """The built-in layouts with a joint map onto ``target`` (besides ``target`` itself)."""
    name = target.name if isinstance(target, Layout) else get_layout(target).name
    return [n for n in builtin_layouts() if n != name and name in _builtin(n).maps]


def find_joint_map(source: Layout | str, target: Layout | str) -> JointMap:
    """The joint map from ``source`` onto ``target``: the identity when they have the same joints,
    else the ``maps`` entry of ``source`` named for ``target`` (a stored copy of a built-in layout
    uses the built-in one's maps). FinetecError when there is none or it does not fit ``target``."""
    src, dst = get_layout(source), get_layout(target)
    if src.joints == dst.joints:
        return JointMap(src, dst, tuple((v,) for v in range(dst.num_joints)))
    table = _declared_maps(src).get(dst.name)
    if table is None:
        onto = layouts_mapping_onto(dst.name) if dst.name in builtin_layouts() else []
        known = f"; layouts with a map onto it: {', '.join(onto)}" if onto else ""
        raise FinetecError(
            f"no joint map from layout {src.name!r} ({src.num_joints} joints) onto {dst.name!r} "
            f"({dst.num_joints} joints){known}; a layout file can add one in its 'maps' field "
            "(docs/layouts.md#joint-maps)")
    where = f"layout {src.name!r}: maps.{dst.name}"
    unknown = sorted(set(table) - set(dst.joints))
    if unknown:
        raise FinetecError(f"{where}: {dst.name!r} has no joint {unknown[0]!r}")
    absent = [j for j in dst.joints if j not in table]
    if absent:
        raise FinetecError(f"{where}: does not say where {absent[0]!r} comes from (give a source "
                           "joint, a list of them, or null for missing)")
    return JointMap(src, dst, tuple(table[j] for j in dst.joints))


def layout_to_config(layout: Layout) -> "str | dict[str, Any]":
    """The layout as stored in ``model.config`` and data files: its name when built-in, else its full dict."""
    if layout.name in builtin_layouts() and get_layout(layout.name) == layout:
        return layout.name
    return layout.to_dict()


__all__ = ["JointMap", "Layout", "REGION_NAMES", "builtin_layouts", "find_joint_map", "get_layout",
           "layout_to_config", "layouts_mapping_onto", "layouts_with_joints", "load_layout_file"]

"""Which class a left/right-mirrored clip belongs to.

A left/right flip (``pipeline.flip_prob``) turns a clip into its mirror image. For most actions
the mirror image is the same action (a wave with the other hand is still a wave), but some
datasets have classes that are each other's mirror image: "swipe left" / "swipe right",
"draw circle clockwise" / "draw circle counter-clockwise", "kick_left" / "kick_right". Flipping
such a clip without changing its label teaches the model that the two classes are one; flipping
it and swapping the label is a correct new training clip.

The mirror partner of each class (:func:`mirror_labels`) is found in two ways:

1. **declared**: the dataset's metadata ``mirror_classes``, a list of ``[name, name]`` pairs
   (the built-in readers declare the pairs of their datasets; a converted dataset can carry its
   own, see ``docs/formats.md``);
2. **by name**: two classes whose names differ only by the mirror words ``left`` <-> ``right``,
   ``clockwise`` <-> ``counter-clockwise`` / ``counterclockwise`` / ``anticlockwise`` and
   ``cw`` <-> ``ccw`` (whole words; separators ``_``, ``-`` and spaces) are partners.

Every other class is its own mirror image.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from finetec.errors import FinetecError

__all__ = ["MIRROR_WORDS", "mirror_labels", "mirror_pairs"]

# each word and its mirror image; the first spelling of a group is the one a swap writes
MIRROR_WORDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("left",), ("right",)),
    (("clockwise",), ("counter-clockwise", "counterclockwise", "anticlockwise", "anti-clockwise",
                      "counter_clockwise", "anti_clockwise")),
    (("cw",), ("ccw",)),
)


def _swap_table() -> dict[str, str]:
    """Every spelling of a mirror word -> its partner's canonical (first) spelling."""
    swap: dict[str, str] = {}
    for a, b in MIRROR_WORDS:
        swap.update({w: b[0] for w in a})
        swap.update({w: a[0] for w in b})
    return swap


_SWAP = _swap_table()
# whole words only; longest spellings first, so "counter-clockwise" is not read as "counter-" + "clockwise"
_WORD = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(w) for w in sorted(_SWAP, key=len, reverse=True))
                   + r")(?![A-Za-z0-9])", re.IGNORECASE)


def _mirror_name(name: str) -> str:
    """``name`` with every mirror word replaced by its partner's canonical form."""
    return _WORD.sub(lambda m: _SWAP[m.group(1).lower()], name)


def _canonical(name: str) -> str:
    """Lower case, one spelling per mirror word, one separator, so names compare across spellings."""
    return re.sub(r"[\s_\-]+", " ", _mirror_name(_mirror_name(name)).lower()).strip()


def mirror_pairs(class_names: Sequence[str], declared: Sequence[Sequence[str]] | None = None,
                 where: str = "dataset") -> list[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, of classes that are each other's mirror image:
    ``declared`` pairs of names first, then the pairs found by name."""
    names = [str(n) for n in class_names]
    index = {n: i for i, n in enumerate(names)}
    partner: dict[int, int] = {}

    def add(i: int, j: int, how: str) -> None:
        if i == j or partner.get(i, j) != j or partner.get(j, i) != i:
            raise FinetecError(f"{where}: mirror_classes: {how} pairs class {names[i]!r} with more than one "
                               f"class or with itself")
        partner[i], partner[j] = j, i

    for pair in declared or ():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise FinetecError(f"{where}: mirror_classes must be a list of [name, name] pairs, got {pair!r}")
        missing = [n for n in pair if n not in index]
        if missing:
            raise FinetecError(f"{where}: mirror_classes names unknown class(es) {', '.join(map(repr, missing))}")
        add(index[pair[0]], index[pair[1]], "the declaration")
    canon = {_canonical(n): i for i, n in enumerate(names)}
    for i, n in enumerate(names):
        if i in partner:
            continue
        j = canon.get(_canonical(_mirror_name(n)))
        if j is not None and j != i and j not in partner:
            add(i, j, "the name rule")
    return sorted((i, j) for i, j in partner.items() if i < j)


def mirror_labels(class_names: Sequence[str], meta: dict[str, Any] | None = None,
                  where: str = "dataset") -> np.ndarray:
    """(K,) int64: the label of the mirror image of a clip of each class (the identity for
    classes without a partner). ``meta``: the dataset's metadata (its ``mirror_classes``)."""
    perm = np.arange(len(class_names), dtype=np.int64)
    for i, j in mirror_pairs(class_names, (meta or {}).get("mirror_classes"), where):
        perm[i], perm[j] = j, i
    return perm

"""A procedural fine-grained action dataset: a small kinematic body driven by parametric
joint-angle trajectories, seen by a camera.

Fourteen classes in seven confusable pairs; the two classes of a pair differ in ONE subtle factor
(see :data:`CLASS_NAMES` and ``docs/synthetic.md``):

=====================  =====================  ======================================
class a                class b                factor
=====================  =====================  ======================================
wave_right_once        wave_right_twice       repetitions of the forearm oscillation
circle_right_cw        circle_right_ccw       direction of the hand circle
kick_left              kick_right             which leg
squat_slow_down        squat_fast_down        tempo: descent 75 % vs 25 % of the squat
spin_once              spin_twice             one or two turns about the vertical axis
step_forward           step_backward          direction of the step
raise_arms_front       raise_arms_side        plane of the arm raise
=====================  =====================  ======================================

Variation: subjects (height and per-limb proportions, movement amplitude), clip length
(``0.75 * frames`` to ``1.25 * frames``), where the action starts and how long it takes, camera yaw
(+-40 degrees), pitch, distance and lateral offset, idle sway of the body and the free arm, and
Gaussian joint noise (1 cm in 3D, 2 px in 2D). ``ntu25`` clips are 3D camera coordinates in metres
in the Kinect convention (right-handed: x towards the sensor's left, y up, z away from the
sensor); ``coco17`` clips are the same bodies projected by a pinhole camera (f = 1000 px, a
1920x1080 image, u to the right, v down). Everything is vectorised over clips and deterministic in
``seed``. Splits ``train`` / ``test`` are by subject (the last 30 % of the subjects are test).

Two pairs of classes are each other's mirror image: ``kick_left`` / ``kick_right`` (found by
name) and ``circle_right_cw`` / ``circle_right_ccw`` (declared in the dataset's
``mirror_classes``: the mirror image of a right-hand clockwise circle is a left-hand
counter-clockwise one, which is nearest to ``circle_right_ccw``); a left/right flip during
training swaps their labels (:mod:`finetec.data.mirror`).
"""
from __future__ import annotations

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.errors import FinetecError
from finetec.layouts import Layout, get_layout

CLASS_NAMES: tuple[str, ...] = (
    "wave_right_once", "wave_right_twice",
    "circle_right_cw", "circle_right_ccw",
    "kick_left", "kick_right",
    "squat_slow_down", "squat_fast_down",
    "spin_once", "spin_twice",
    "step_forward", "step_backward",
    "raise_arms_front", "raise_arms_side",
)
SUPPORTED_LAYOUTS: tuple[str, ...] = ("coco17", "ntu25")

__all__ = ["CLASS_NAMES", "SUPPORTED_LAYOUTS", "make_dataset"]

# Bone lengths of a 1.75 m reference body (metres).
_BONES = {
    "spine_low": 0.24, "spine_high": 0.24, "neck": 0.08, "head": 0.13,
    "shoulder": 0.18, "hip": 0.10,
    "upper_arm": 0.29, "forearm": 0.25, "hand": 0.08, "tip": 0.06,
    "thigh": 0.43, "shin": 0.41, "foot": 0.13,
}
_X = np.array([1.0, 0.0, 0.0])   # body left
_Y = np.array([0.0, 1.0, 0.0])   # up
_Z = np.array([0.0, 0.0, 1.0])   # body forward


# -- small helpers (all broadcast over leading (n, T) axes) --------------------------------------
def _smooth(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1] (clipped)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _envelope(u: np.ndarray, rise: float = 0.2) -> np.ndarray:
    """0 -> 1 during the first ``rise`` of the action, 1, then 1 -> 0 during the last ``rise``."""
    return _smooth(u / rise) * _smooth((1 - u) / rise)


def _hold(u: np.ndarray, rise: float = 0.2) -> np.ndarray:
    """The action phase mapped so that the hold part [rise, 1 - rise] spans [0, 1]."""
    return np.clip((u - rise) / (1 - 2 * rise), 0.0, 1.0)


def _bump(u: np.ndarray) -> np.ndarray:
    return np.sin(np.pi * np.clip(u, 0.0, 1.0)) ** 2


def _dir(alpha: np.ndarray, beta: np.ndarray, side: float) -> np.ndarray:
    """Unit limb direction from the hanging pose: raised forward by ``alpha``, then outward by
    ``beta`` (side +1 for the left limbs, -1 for the right). (...,) -> (..., 3)."""
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64))
    ca = np.cos(alpha)
    return np.stack([ca * side * np.sin(beta), -ca * np.cos(beta), np.sin(alpha)], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _blend(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Direction between a and b with weight w (..., ) in [0, 1], renormalised."""
    return _unit(a * (1 - w[..., None]) + b * w[..., None])


def _rot_y(theta: np.ndarray) -> np.ndarray:
    """(...,) angles -> (..., 3, 3) rotations about +y."""
    c, s = np.cos(theta), np.sin(theta)
    z, o = np.zeros_like(theta), np.ones_like(theta)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_x(theta: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    z, o = np.zeros_like(theta), np.ones_like(theta)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


# -- the body's control signals ------------------------------------------------------------------
class _Controls:
    """Per-clip, per-frame control signals of the body in its own frame (x left, y up, z forward).

    root (n, T, 3) pelvis offset, lean (n, T) forward torso lean, spin (n, T) rotation about the
    vertical axis, and unit directions (n, T, 3) of each limb segment."""

    def __init__(self, n: int, T: int, rng: np.random.Generator, u_idle: np.ndarray):
        self.root = np.zeros((n, T, 3))
        sway = rng.uniform(0.005, 0.02, (n, 1))
        self.root[..., 0] = sway * np.sin(2 * np.pi * (u_idle * rng.uniform(0.5, 1.5, (n, 1)) + rng.random((n, 1))))
        self.lean = rng.uniform(-0.05, 0.08, (n, 1)) * np.ones((n, T))
        self.spin = np.zeros((n, T))
        swing = 0.12 * np.sin(2 * np.pi * (u_idle * rng.uniform(0.3, 1.0, (n, 1)) + rng.random((n, 1))))
        self.arm = {}
        for side, sgn in (("left", 1.0), ("right", -1.0)):
            a = 0.05 + swing * sgn
            self.arm[side] = [_dir(a, np.full((n, T), 0.12), sgn), _dir(a + 0.25, np.full((n, T), 0.08), sgn)]
        self.leg = {side: [_dir(np.zeros((n, T)), np.full((n, T), 0.03), sgn),
                           _dir(np.zeros((n, T)), np.full((n, T), 0.03), sgn)]
                    for side, sgn in (("left", 1.0), ("right", -1.0))}


def _act_wave(c: _Controls, u, amp, reps: int, rng) -> None:
    e, w = _envelope(u), _hold(u)
    up_arm = _dir(0.25 * amp, 1.35 * amp, -1.0)
    c.arm["right"][0] = _blend(c.arm["right"][0], np.broadcast_to(up_arm, c.arm["right"][0].shape), e)
    osc = 0.6 * amp * np.sin(2 * np.pi * reps * w)
    fore = _unit(_Y + osc[..., None] * (-_X) + 0.15 * _Z)
    c.arm["right"][1] = _blend(c.arm["right"][1], fore, e)


def _act_circle(c: _Controls, u, amp, direction: float, rng) -> None:
    n = u.shape[0]
    e, w = _envelope(u), _hold(u)
    phi = rng.uniform(0, 2 * np.pi, (n, 1)) + direction * 2 * np.pi * w
    r = 0.55 * amp[..., None]
    ring = np.cos(phi)[..., None] * (-_X) + np.sin(phi)[..., None] * _Y
    upper = _unit(0.8 * _Z - 0.35 * _Y + 0.35 * r * ring)
    fore = _unit(_Z + r * ring)
    c.arm["right"][0] = _blend(c.arm["right"][0], upper, e)
    c.arm["right"][1] = _blend(c.arm["right"][1], fore, e)


def _act_kick(c: _Controls, u, amp, side: str, rng) -> None:
    sgn = 1.0 if side == "left" else -1.0
    b = _bump(u)
    thigh = 1.25 * amp * b
    knee = 0.9 * np.sin(np.pi * np.clip(u, 0, 1)) * (1 - b) + 0.15 * b   # bent on the way, straight at the top
    c.leg[side] = [_dir(thigh, np.full_like(u, 0.03), sgn), _dir(thigh - knee, np.full_like(u, 0.03), sgn)]
    other = "right" if side == "left" else "left"
    c.arm[other][0] = _blend(c.arm[other][0], np.broadcast_to(_dir(0.6, 0.2, -sgn), c.arm[other][0].shape), 0.6 * b)
    c.lean = c.lean - 0.15 * b


def _act_squat(c: _Controls, u, amp, descent: float, rng) -> None:
    uu = np.clip(u, 0, 1)
    depth = np.where(uu < descent, _smooth(uu / descent), _smooth((1 - uu) / (1 - descent)))
    theta = 1.15 * amp * depth
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        c.leg[side] = [_dir(theta, np.full_like(u, 0.08), sgn), _dir(-0.8 * theta, np.full_like(u, 0.05), sgn)]
        c.arm[side][0] = _blend(c.arm[side][0], np.broadcast_to(_dir(1.4, 0.1, sgn), c.arm[side][0].shape), depth)
        c.arm[side][1] = _blend(c.arm[side][1], np.broadcast_to(_dir(1.5, 0.05, sgn), c.arm[side][1].shape), depth)
    c.lean = c.lean + 0.55 * depth
    c.pin_feet = True


def _act_spin(c: _Controls, u, amp, turns: int, rng) -> None:
    n = u.shape[0]
    direction = np.where(rng.random((n, 1)) < 0.5, 1.0, -1.0)
    c.spin = c.spin + direction * turns * 2 * np.pi * _smooth(u)
    e = _envelope(u, 0.15)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        c.arm[side][0] = _blend(c.arm[side][0], np.broadcast_to(_dir(0.2, 0.7, sgn), c.arm[side][0].shape), e)
    c.root[..., 1] += 0.04 * amp * _bump(u)


def _act_step(c: _Controls, u, amp, direction: float, rng) -> None:
    b = _bump(u)
    swing = np.sin(np.pi * np.clip(u * 2, 0, 1)) * (u < 0.5) + np.sin(np.pi * np.clip(u * 2 - 1, 0, 1)) * (u >= 0.5)
    step = 0.45 * amp * b * direction
    c.leg["right"] = [_dir(step, np.full_like(u, 0.03), -1.0), _dir(step - 0.7 * swing, np.full_like(u, 0.03), -1.0)]
    c.leg["left"] = [_dir(-0.5 * step, np.full_like(u, 0.03), 1.0), _dir(-0.5 * step, np.full_like(u, 0.03), 1.0)]
    c.root[..., 2] += 0.16 * amp * b * direction
    c.root[..., 1] -= 0.03 * b


def _act_raise(c: _Controls, u, amp, plane: str, rng) -> None:
    e = _envelope(u, 0.3)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        if plane == "front":
            d = _dir(1.5 * amp * e, np.full_like(u, 0.12), sgn)
        else:
            d = _dir(np.full_like(u, 0.05), 0.12 + 1.45 * amp * e, sgn)
        c.arm[side] = [d, d]


_ACTIONS = [
    (_act_wave, 1), (_act_wave, 2),
    (_act_circle, -1.0), (_act_circle, 1.0),
    (_act_kick, "left"), (_act_kick, "right"),
    (_act_squat, 0.75), (_act_squat, 0.25),
    (_act_spin, 1), (_act_spin, 2),
    (_act_step, 1.0), (_act_step, -1.0),
    (_act_raise, "front"), (_act_raise, "side"),
]


# -- kinematics ----------------------------------------------------------------------------------
def _forward_kinematics(c: _Controls, L: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Joint positions (n, T, 3) in the body frame from the controls and bone lengths (n, 1)."""
    n, T = c.lean.shape
    leg_len = L["thigh"] + L["shin"]
    hips = {s: sg * L["hip"][..., None] * _X for s, sg in (("left", 1.0), ("right", -1.0))}
    # the rest pelvis height puts the ankles on the ground (y = 0)
    base = np.zeros((n, 1, 3))
    base[..., 1] = leg_len * np.cos(0.03)
    root = base + c.root
    if getattr(c, "pin_feet", False):  # squat: keep the ankles where they are at rest
        rest = (L["thigh"] + L["shin"])[..., None] * _dir(np.zeros(1), np.full(1, 0.03), 1.0)
        legvec = L["thigh"][..., None] * c.leg["left"][0] + L["shin"][..., None] * c.leg["left"][1]
        root = root - (legvec - rest) * np.array([0.0, 1.0, 1.0])
    J: dict[str, np.ndarray] = {}
    torso = np.stack([np.zeros_like(c.lean), np.cos(c.lean), np.sin(c.lean)], -1)
    J["spine_base"] = root
    J["spine_mid"] = root + L["spine_low"][..., None] * torso
    J["spine_shoulder"] = J["spine_mid"] + L["spine_high"][..., None] * torso
    J["neck"] = J["spine_shoulder"] + L["neck"][..., None] * torso
    J["head"] = J["neck"] + L["head"][..., None] * torso
    for side, sg in (("left", 1.0), ("right", -1.0)):
        sh = J["spine_shoulder"] + sg * L["shoulder"][..., None] * _X
        up, fo = c.arm[side]
        J[f"{side}_shoulder"] = sh
        J[f"{side}_elbow"] = sh + L["upper_arm"][..., None] * up
        J[f"{side}_wrist"] = J[f"{side}_elbow"] + L["forearm"][..., None] * fo
        J[f"{side}_hand"] = J[f"{side}_wrist"] + L["hand"][..., None] * fo
        J[f"{side}_hand_tip"] = J[f"{side}_hand"] + L["tip"][..., None] * fo
        J[f"{side}_thumb"] = J[f"{side}_wrist"] + 0.6 * L["hand"][..., None] * fo + 0.035 * _Z
        hip = root + hips[side]
        th, shn = c.leg[side]
        J[f"{side}_hip"] = hip
        J[f"{side}_knee"] = hip + L["thigh"][..., None] * th
        J[f"{side}_ankle"] = J[f"{side}_knee"] + L["shin"][..., None] * shn
        J[f"{side}_foot"] = J[f"{side}_ankle"] + L["foot"][..., None] * _unit(_Z - 0.3 * shn)
        # face points for COCO
        J[f"{side}_eye"] = J["head"] + 0.03 * sg * _X + 0.07 * _Z + 0.02 * torso
        J[f"{side}_ear"] = J["head"] + 0.075 * sg * _X - 0.01 * torso
    J["nose"] = J["head"] + 0.1 * _Z - 0.02 * torso
    return J


def _positions(layout: Layout, J: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([J[name] for name in layout.joints], axis=2)   # (n, T, V, 3)


# -- the dataset ---------------------------------------------------------------------------------
def make_dataset(layout: str = "coco17", clips: int = 1000, seed: int = 0, frames: int = 64,
                 subjects: int = 10) -> SkeletonDataset:
    """A synthetic fine-grained dataset (see the module docstring).

    layout: ``coco17`` (2D pixels) or ``ntu25`` (3D metres); clips: number of clips (balanced
    over the 14 classes and over subjects); frames: mean clip length (lengths are uniform in
    [0.75, 1.25] * frames); subjects: number of subjects (>= 2; the last 30 % are the test split). Subjects are filled
    class by class, so with fewer than 14 x subjects clips the last subjects (the test split) may
    get no clip: lower ``subjects`` for very small sets.
    """
    lay = get_layout(layout)
    if lay.name not in SUPPORTED_LAYOUTS:
        raise FinetecError(f"synthetic data is available for {', '.join(SUPPORTED_LAYOUTS)}, not {lay.name!r}")
    for name, v, lo in (("clips", clips, 1), ("frames", frames, 8), ("subjects", subjects, 2), ("seed", seed, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise FinetecError(f"synthetic dataset option {name} must be an integer >= {lo}, got {v!r}")
    rng = np.random.default_rng([int(seed), 0x5EED])
    K = len(CLASS_NAMES)
    order = rng.permutation(clips)
    labels = (np.arange(clips) % K)[order]
    subj = ((np.arange(clips) // K) % subjects)[order]

    # subjects: size, proportions, movement amplitude
    height = rng.uniform(0.88, 1.12, subjects)
    prop = {k: rng.uniform(0.94, 1.06, subjects) for k in ("torso", "arm", "leg", "head")}
    group = {"spine_low": "torso", "spine_high": "torso", "neck": "head", "head": "head", "shoulder": "torso",
             "hip": "torso", "upper_arm": "arm", "forearm": "arm", "hand": "arm", "tip": "arm",
             "thigh": "leg", "shin": "leg", "foot": "leg"}
    style = rng.uniform(0.85, 1.15, subjects)

    # per clip: length, action window, amplitude, camera
    lo, hi = int(round(0.75 * frames)), int(round(1.25 * frames))
    T_clip = rng.integers(lo, hi + 1, clips)
    Tmax = int(T_clip.max())
    start = rng.uniform(0.03, 0.2, clips)
    length = np.minimum(rng.uniform(0.6, 0.85, clips), 0.98 - start)
    amp = style[subj] * rng.uniform(0.88, 1.12, clips)
    yaw = np.deg2rad(rng.uniform(-40, 40, clips))
    pitch = np.deg2rad(rng.uniform(-8, 8, clips))
    dist = rng.uniform(2.6, 3.8, clips)
    lateral = rng.uniform(-0.4, 0.4, clips)
    cam_height = rng.uniform(0.7, 1.1, clips)
    noise_seed = rng.integers(0, 2**63 - 1)

    t = np.arange(Tmax)[None, :]
    s = t / (T_clip[:, None] - 1)                        # clip time in [0, 1] (beyond: padding)
    u = (s - start[:, None]) / length[:, None]           # action phase; < 0 before, > 1 after

    pos = np.zeros((clips, Tmax, lay.num_joints, 3))
    for k in range(K):
        idx = np.flatnonzero(labels == k)
        if idx.size == 0:
            continue
        krng = np.random.default_rng([int(seed), 0xC1A55, k])
        ctrl = _Controls(idx.size, Tmax, krng, s[idx])
        act, arg = _ACTIONS[k]
        act(ctrl, u[idx], amp[idx, None], arg, krng)
        L = {b: (_BONES[b] * height[subj[idx]] * prop[group[b]][subj[idx]])[:, None] for b in _BONES}
        J = _forward_kinematics(ctrl, L)
        # the body spins about the vertical axis through its pelvis
        axis = 0.5 * (J["left_hip"] + J["right_hip"]) * np.array([1.0, 0.0, 1.0])
        body = _positions(lay, J) - axis[:, :, None]
        c, s_ = np.cos(ctrl.spin)[..., None], np.sin(ctrl.spin)[..., None]       # (n, T, 1)
        spun = np.stack([c * body[..., 0] + s_ * body[..., 2], body[..., 1], -s_ * body[..., 0] + c * body[..., 2]], -1)
        pos[idx] = spun + axis[:, :, None]

    # camera: the body faces the camera (body forward -> camera -z), turned by yaw, then pitched
    R = np.einsum("nij,njk->nik", _rot_x(pitch), _rot_y(np.pi + yaw))
    cam = np.matmul(pos.reshape(clips, -1, 3), R.transpose(0, 2, 1)).reshape(pos.shape)
    cam[..., 0] += lateral[:, None, None]
    cam[..., 1] -= cam_height[:, None, None]
    cam[..., 2] += dist[:, None, None]
    nrng = np.random.default_rng(noise_seed)
    if lay.name == "ntu25":
        kp = cam + nrng.normal(0, 0.01, cam.shape)
    else:
        f, cx, cy = 1000.0, 960.0, 540.0
        kp = np.stack([cx - f * cam[..., 0] / cam[..., 2], cy - f * cam[..., 1] / cam[..., 2]], axis=-1)
        kp = kp + nrng.normal(0, 2.0, kp.shape)

    valid = t < T_clip[:, None]                          # (n, Tmax)
    flat = kp[valid].astype(np.float32)                  # (F, V, C) clip-major order
    offsets = np.concatenate([[0], np.cumsum(T_clip)]).astype(np.int64)
    n_test = max(1, int(round(0.3 * subjects)))
    test_subjects = np.arange(subjects - n_test, subjects)
    is_test = np.isin(subj, test_subjects)
    ds = SkeletonDataset(
        keypoint=flat[:, None], mask=np.ones(flat.shape[:2], bool)[:, None], offsets=offsets,
        persons=np.ones(clips, np.int16), label=labels.astype(np.int64),
        ids=np.array([f"syn{i:05d}" for i in range(clips)], dtype=str), layout=lay,
        class_names=list(CLASS_NAMES),
        splits={"train": np.flatnonzero(~is_test).astype(np.int64), "test": np.flatnonzero(is_test).astype(np.int64)},
        meta={"synthetic": {"layout": lay.name, "clips": int(clips), "seed": int(seed), "frames": int(frames),
                            "subjects": int(subjects), "test_subjects": test_subjects.tolist()},
              "mirror_classes": [["circle_right_cw", "circle_right_ccw"]]},
        clip_meta=[{"subject": int(subj[i]), "yaw_deg": round(float(np.rad2deg(yaw[i])), 2)} for i in range(clips)],
        source=f"synthetic:{lay.name}",
    )
    ds.validate()
    return ds


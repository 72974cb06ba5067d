"""Write the example clips of this folder: short pose-estimator JSON files made from a kinematic
model of a person, not from any dataset (the datasets' licences do not allow copying them).

    python examples/make_examples.py            # rewrites examples/*.json (deterministic)

- ``jumping_jacks_coco17.json``: 2D, COCO-17 (what mmpose / RTMPose / YOLO-pose write), image
  pixels (y down), 30 frames at 30 fps: one jumping jack; mmpose-style frames (``instances`` with
  ``keypoints`` [[x, y], ...] and ``keypoint_scores``).
- ``squat_coco17.json``: 2D, COCO-17, 45 frames: one back squat (hands holding a bar on the
  shoulders); three frames without a detection and an ankle undetected for seven frames (score 0
  at (0, 0)), as a pose estimator writes them.
- ``sit_down_ntu25.json``: 3D, NTU RGB+D / Kinect v2 25 joints, camera coordinates in metres (x
  to the person's right, y up, z away from the camera), 50 frames: standing, sitting down on a
  chair, seated.

A clip holds one repetition of the action: a model resamples the whole clip to its clip length,
and the training clips show the action about once.

Every joint gets a little Gaussian noise (seeded) so that the clips look like a tracker's output.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
FPS = 30


def _phase(t: np.ndarray, period: float) -> np.ndarray:
    """0 -> 1 -> 0 once per period (a smooth cosine)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * t / period)


def _body_2d(arm: np.ndarray, leg: np.ndarray, drop: np.ndarray, knee: np.ndarray, forward_arms: np.ndarray,
             lift: np.ndarray, bar: bool = False) -> dict[str, np.ndarray]:
    """Joints (T, 2) in image pixels of a person facing the camera (their left on the image's
    right). ``arm``: arm angle from hanging (0) to overhead (pi) in the image plane; ``leg``: leg
    spread angle; ``drop``: hip drop in pixels (squat); ``knee``: knee bend angle; ``forward_arms``:
    0..1 arms raised forward (shortened in the image); ``lift``: whole-body lift in pixels (jump);
    ``bar``: the hands hold a bar on the shoulders (a back squat) instead."""
    T = len(arm)
    cx, hip_y = 320.0, 300.0
    out: dict[str, np.ndarray] = {}

    def put(name: str, x: np.ndarray, y: np.ndarray) -> None:
        out[name] = np.stack([np.broadcast_to(x, (T,)), np.broadcast_to(y, (T,))], axis=1).astype(np.float64)

    base = hip_y + drop - lift
    torso = 100.0                       # shoulders to hips; the other lengths in proportion
    thigh, shin = 0.8 * torso, 0.8 * torso
    for side, s in (("left", 1.0), ("right", -1.0)):
        hx = cx + s * 0.25 * torso
        # legs: spread by `leg`; knees bend forward (in 2D: the thigh looks shorter and the knee
        # moves out a little), the hips drop by `drop`
        kx = hx + s * (thigh * np.sin(leg) + 0.12 * torso * np.sin(knee))
        ky = base + thigh * np.cos(leg) * np.cos(knee)
        ax = kx + s * shin * np.sin(leg)
        ay = ky + shin * np.cos(leg) * np.cos(0.15 * knee)
        put(f"{side}_hip", hx, base)
        put(f"{side}_knee", kx, ky)
        put(f"{side}_ankle", ax, ay)
        # arms: hang, swing sideways (`arm`) or rise forward (`forward_arms`, foreshortened)
        sx, sy = cx + s * 0.4 * torso, base - torso
        upper, fore = 0.5 * torso, 0.5 * torso
        reach = 1.0 - 0.85 * np.sin(forward_arms * np.pi / 2)        # forward: shorter in the image
        ex = sx + s * upper * np.sin(arm)
        ey = sy + upper * np.cos(arm) * reach - 0.1 * torso * forward_arms
        wx = ex + s * fore * np.sin(arm * 1.05)
        wy = ey + fore * np.cos(arm * 1.05) * reach - 0.1 * torso * forward_arms
        if bar:
            ex, ey = sx + s * 0.3 * torso, sy + 0.35 * torso
            wx, wy = sx + s * 0.45 * torso, sy - 0.05 * torso
        put(f"{side}_shoulder", sx, sy)
        put(f"{side}_elbow", ex, ey)
        put(f"{side}_wrist", wx, wy)
        put(f"{side}_eye", cx + s * 0.08 * torso, sy - 0.55 * torso)
        put(f"{side}_ear", cx + s * 0.16 * torso, sy - 0.48 * torso)
    put("nose", np.full(T, cx), base - torso - 0.45 * torso)
    return out


COCO17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle"]
NTU25 = ["spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
         "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle",
         "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip",
         "left_thumb", "right_hand_tip", "right_thumb"]


N_JJ, P_JJ = 30, 30.0


def jumping_jacks(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(N_JJ, dtype=np.float64)
    ph = _phase(t, P_JJ)
    joints = _body_2d(arm=np.radians(165.0) * ph, leg=np.radians(22.0) * ph, drop=np.zeros_like(t),
                      knee=np.radians(10.0) * np.abs(np.sin(2 * np.pi * t / P_JJ)), forward_arms=np.zeros_like(t),
                      lift=18.0 * np.sin(np.pi * ph) ** 2)
    kp = np.stack([joints[j] for j in COCO17], axis=1)
    return kp + rng.normal(0.0, 1.5, kp.shape)


def squat_2d(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(45, dtype=np.float64)
    ph = _phase(t, 45.0)
    joints = _body_2d(arm=np.radians(8.0) * np.ones_like(t), leg=np.radians(8.0) * np.ones_like(t),
                      drop=70.0 * ph, knee=np.radians(95.0) * ph, forward_arms=np.zeros_like(t),
                      lift=np.zeros_like(t), bar=True)
    kp = np.stack([joints[j] for j in COCO17], axis=1)
    return kp + rng.normal(0.0, 1.5, kp.shape)


def _body_3d(thigh_a: np.ndarray, shin_a: np.ndarray, hip_back: np.ndarray, trunk_lean: np.ndarray,
             arm_raise: np.ndarray) -> np.ndarray:
    """(T, 25, 3) Kinect v2 camera coordinates in metres of a person facing the camera (x to the
    person's right, y up, z away from the camera; the person's left is at -x). Angles in radians:
    ``thigh_a`` / ``shin_a`` tilt of thigh / shin from vertical (knee forward), ``hip_back`` the hips'
    move away from the camera (m), ``trunk_lean`` forward lean of the trunk, ``arm_raise`` the arms'
    angle forward from hanging."""
    T = len(thigh_a)
    z0, thigh, shin = 2.8, 0.42, 0.42
    hip_y = (shin * np.cos(shin_a) + thigh * np.cos(thigh_a)) + 0.08    # ankle height 0.08 m
    J: dict[str, np.ndarray] = {}

    def put(name: str, x, y, z) -> None:
        J[name] = np.stack([np.broadcast_to(np.asarray(x, float), (T,)), np.broadcast_to(np.asarray(y, float), (T,)),
                            np.broadcast_to(np.asarray(z, float), (T,))], axis=1)

    hz = z0 + hip_back
    put("spine_base", 0.0, hip_y, hz)
    for name, h in (("spine_mid", 0.28), ("spine_shoulder", 0.5), ("neck", 0.58), ("head", 0.72)):
        put(name, 0.0, hip_y + h * np.cos(trunk_lean), hz - h * np.sin(trunk_lean))
    for side, s in (("left", -1.0), ("right", 1.0)):
        hx = s * 0.1
        put(f"{side}_hip", hx, hip_y - 0.02, hz)
        kz = hz - thigh * np.sin(thigh_a)
        ky = hip_y - thigh * np.cos(thigh_a)
        put(f"{side}_knee", hx * 1.3, ky, kz)
        az = kz + shin * np.sin(shin_a)
        put(f"{side}_ankle", hx * 1.2, ky - shin * np.cos(shin_a), az)
        put(f"{side}_foot", hx * 1.2, ky - shin * np.cos(shin_a) - 0.05, az - 0.12)
        sy = hip_y + 0.5 * np.cos(trunk_lean)
        sz = hz - 0.5 * np.sin(trunk_lean)
        sx = s * 0.18
        put(f"{side}_shoulder", sx, sy, sz)
        upper, fore = 0.28, 0.26
        ey, ez = sy - upper * np.cos(arm_raise), sz - upper * np.sin(arm_raise)
        wy, wz = ey - fore * np.cos(arm_raise), ez - fore * np.sin(arm_raise)
        put(f"{side}_elbow", sx, ey, ez)
        put(f"{side}_wrist", sx, wy, wz)
        put(f"{side}_hand", sx, wy - 0.07 * np.cos(arm_raise), wz - 0.07 * np.sin(arm_raise))
        put(f"{side}_hand_tip", sx, wy - 0.13 * np.cos(arm_raise), wz - 0.13 * np.sin(arm_raise))
        put(f"{side}_thumb", sx - s * 0.04, wy - 0.06 * np.cos(arm_raise), wz - 0.06 * np.sin(arm_raise))
    return np.stack([J[j] for j in NTU25], axis=1)


def sit_down_3d(rng: np.random.Generator) -> np.ndarray:
    """Standing, sitting down on a chair (frames 10 to 35), seated (50 frames)."""
    t = np.arange(50, dtype=np.float64)
    s = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - 10) / 25.0, 0, 1))   # 0 standing -> 1 seated
    kp = _body_3d(thigh_a=np.radians(85.0) * s, shin_a=np.radians(5.0) * s, hip_back=0.3 * s,
                  trunk_lean=np.radians(35.0) * np.sin(np.pi * s) + np.radians(8.0) * s,
                  arm_raise=np.radians(25.0) * s)
    return kp + rng.normal(0.0, 0.008, kp.shape)


def _r(v: float, nd: int) -> float:
    return round(float(v), nd)


def write_2d(path: Path, kp: np.ndarray, rng: np.random.Generator, lost_frames=(), occluded=()) -> None:
    """mmpose-style frames; ``lost_frames``: frames with no detection; ``occluded``: (frame, joint)
    reported with score 0 at (0, 0), as COCO tools write an undetected joint."""
    frames = []
    for t in range(len(kp)):
        if t in lost_frames:
            frames.append({"frame": t, "instances": []})
            continue
        scores = np.clip(rng.normal(0.9, 0.04, kp.shape[1]), 0.3, 1.0)
        pts = [[_r(x, 1), _r(y, 1)] for x, y in kp[t]]
        for (f, j) in occluded:
            if f == t:
                pts[j], scores[j] = [0.0, 0.0], 0.0
        frames.append({"frame": t, "instances": [{"keypoints": pts, "keypoint_scores": [_r(s, 3) for s in scores]}]})
    doc = {"id": path.stem, "layout": "coco17", "dim": 2, "units": "pixels", "fps": FPS,
           "source": "examples/make_examples.py (a kinematic model, not recorded data)", "frames": frames}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")


def write_3d(path: Path, kp: np.ndarray) -> None:
    frames = [{"frame": t, "instances": [{"keypoints": [[_r(v, 4) for v in row] for row in kp[t]],
                                           "keypoint_scores": [1] * kp.shape[1]}]} for t in range(len(kp))]
    doc = {"id": path.stem, "layout": "ntu25", "dim": 3, "units": "m", "fps": FPS,
           "source": "examples/make_examples.py (a kinematic model, not recorded data)", "frames": frames}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")


def main(out: Path = HERE) -> list[Path]:
    rng = np.random.default_rng(2026)
    paths = [out / "jumping_jacks_coco17.json", out / "squat_coco17.json", out / "sit_down_ntu25.json"]
    write_2d(paths[0], jumping_jacks(rng), rng)
    write_2d(paths[1], squat_2d(rng), rng, lost_frames=(12, 13, 30),
             occluded=[(t, COCO17.index("left_ankle")) for t in range(18, 25)])
    write_3d(paths[2], sit_down_3d(rng))
    return paths


if __name__ == "__main__":
    for p in main():
        print(f"wrote {p} ({p.stat().st_size} bytes)")

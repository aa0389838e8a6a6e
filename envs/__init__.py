"""Environments for LaGO: CLEVR-Robot (discrete actions) and Meta-World (continuous actions).

Importing this package registers ``CLEVRRobot-v0`` with gymnasium.
"""

import os

try:
    import mujoco  # noqa: F401
except Exception as error:  # MUJOCO_GL names an OpenGL library that cannot be loaded: PyOpenGL fails deep inside
    if not os.environ.get("MUJOCO_GL"):
        raise
    why = (str(error) or type(error).__name__).splitlines()[-1]
    raise SystemExit(f"MUJOCO_GL={os.environ['MUJOCO_GL']}: mujoco cannot load that OpenGL library ({why}); install it "
                     "(osmesa: libosmesa6, egl: libegl1) or unset MUJOCO_GL, which only rendering needs") from None

from envs.clevr_robot import register_clevr_robot  # noqa: E402

register_clevr_robot()

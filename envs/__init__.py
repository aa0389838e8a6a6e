"""Environments for LaGO: CLEVR-Robot (discrete actions) and Meta-World (continuous actions).

Importing this package registers ``CLEVRRobot-v0`` with gymnasium.
"""

from envs.clevr_robot import register_clevr_robot

register_clevr_robot()

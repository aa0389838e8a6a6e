"""CLEVR-Robot as a gymnasium environment on the official ``mujoco`` bindings.

A reimplementation of the environment of Jiang et al. (2019), "Language as an Abstraction for
Hierarchical Deep Reinforcement Learning" (google-research/clevr_robot_env), written from its
published facts rather than its code:

- five coloured balls on a walled table and a point-mass pusher;
- a discrete action is (ball, direction) with 8 directions (+-x, +-y and the diagonals at
  (0.8, 0.8)), 40 actions in all: the pusher is teleported 0.15 behind the ball and pushed along
  the direction for 40 physics substeps of 0.01 s;
- the observation is the 2-D position of every ball (10 numbers);
- the goal is a language instruction about the spatial relation of two balls ("Push the red ball
  to the left of the blue ball"); a relation holds when the unit vector from the anchor ball to
  the target ball has a dot product above 0.6 with the relation's direction and the balls are
  closer than 0.7 (the original's thresholds);
- the reward is sparse: 1 when the goal holds, which also ends the episode; a goal that already
  holds at reset is never chosen.

Conventions of this implementation (where the original is silent or differs):

- The camera looks from the -y side of the table towards +y, so "left"/"right" are -x/+x and
  "front"/"behind" are -y (nearer the camera) and +y (further away).
- Balls slide in the plane on x/y slide joints with viscous damping (no rolling), contacts are
  frictionless, and after each push every velocity is set to zero and the pusher is parked off the
  table. The 10-number observation is therefore the whole state: the environment is Markov.
- Goals are triples (target colour, relation, anchor colour): 5 x 4 x 4 = 80 goals. The held-out
  ``test`` split contains every goal whose (target colour, relation) combination is one of
  ``HELD_OUT_COMBINATIONS``; those combinations never occur in ``train``. Instructions come from
  ``TRAIN_TEMPLATES``, or from the held-out ``PARAPHRASE_TEMPLATES`` with
  ``instructions="paraphrase"`` (other sentences, the same key words), or with
  ``instructions="unseen"`` from ``UNSEEN_TEMPLATES`` filled with ``UNSEEN_COLOURS`` and
  ``UNSEEN_RELATION_PHRASES``: synonyms and descriptions of the outcome, no content word of which
  occurs in any training instruction (what an LLM's knowledge of language could bridge), or with
  ``instructions="none"`` the one sentence ``NO_GOAL_TEMPLATES[0]`` for every goal (the control: the success
  a prior has without knowing the goal).
- ``info`` carries the goal as text (``goal_text``, for the language prior), as an id
  (``goal_id``) and as a factored 14-number encoding (``goal``: one-hot target colour, relation
  and anchor colour) that a policy network can consume and that generalises to held-out
  combinations. ``goal_in_obs=True`` appends that encoding to the observation.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any, Literal

import gymnasium as gym
import mujoco
import numpy as np

ENV_ID = "CLEVRRobot-v0"
DEFAULT_MAX_EPISODE_STEPS = 50

COLOURS = ("red", "blue", "green", "purple", "cyan")
COLOUR_RGBA = ("1 0.1 0.1 1", "0.2 0.5 1 1", "0.2 1 0 1", "0.8 0.2 1 1", "0.2 1 1 1")
RELATIONS = ("left", "right", "front", "behind")
RELATION_VECTORS = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
RELATION_PHRASES = ("to the left of", "to the right of", "in front of", "behind")
RELATION_MIN_COSINE = 0.6
RELATION_MAX_DISTANCE = 0.7

DIRECTIONS = np.array(
    [[1, 0], [0, 1], [-1, 0], [0, -1], [0.8, 0.8], [-0.8, 0.8], [0.8, -0.8], [-0.8, -0.8]]
)
DIRECTION_NAMES = (
    "right", "behind", "left", "front", "behind-right", "behind-left", "front-right", "front-left"
)
NUM_BALLS = len(COLOURS)
NUM_ACTIONS = NUM_BALLS * len(DIRECTIONS)
OBS_DIM = 2 * NUM_BALLS
# the observation as words for a prior that reads the state as text (finetune_prior.py --state-encoding text):
# each ball's colour and (x, y)
STATE_FIELDS = tuple((colour, (2 * ball, 2 * ball + 1)) for ball, colour in enumerate(COLOURS))
GOAL_DIM = 2 * NUM_BALLS + len(RELATIONS)

# physics: the original's timestep and push length, then our planar table
TIMESTEP = 0.01
PUSH_SUBSTEPS = 40
PUSH_OFFSET = 0.15  # the pusher starts this far behind the ball, along the direction
BALL_RADIUS = 0.07
PUSHER_RADIUS = 0.05
TABLE_HALF_SIZE = 0.6  # walls: ball centres stay inside +-(TABLE_HALF_SIZE - BALL_RADIUS)
SPAWN_HALF_SIZE = 0.45
SPAWN_MIN_DISTANCE = 0.2
PUSHER_PARKING = (0.0, -1.5)

# (target colour, relation) combinations seen only in the test split
HELD_OUT_COMBINATIONS = (("red", "left"), ("blue", "right"), ("green", "front"), ("purple", "behind"))

TRAIN_TEMPLATES = (
    "Push the {target} ball {relation} the {anchor} ball.",
    "Move the {target} ball {relation} the {anchor} ball.",
    "Put the {target} ball {relation} the {anchor} ball.",
    "Can you move the {target} ball {relation} the {anchor} ball?",
)
PARAPHRASE_TEMPLATES = (
    "I want the {target} sphere {relation} the {anchor} sphere.",
    "The {target} ball should end up {relation} the {anchor} ball.",
    "Get the {target} ball so that it sits {relation} the {anchor} one.",
)

# No content word of these occurs in a training instruction: other colour names, the relations as compass sides and
# distances from the camera (which looks towards +y), the goal described as an outcome.
UNSEEN_TEMPLATES = (
    "Shove the {target} marble so it rests {relation} the {anchor} marble.",
    "Afterwards, the {target} orb should lie {relation} the {anchor} orb.",
    "Arrange the table so that the {target} marble ends up {relation} the {anchor} marble.",
)
UNSEEN_COLOURS = ("crimson", "azure", "emerald", "violet", "turquoise")
UNSEEN_RELATION_PHRASES = ("on the west side of", "on the east side of", "nearer the camera than",
                           "farther from the camera than")
NO_GOAL_TEMPLATES = ("Complete the task.",)  # one sentence for every goal

GOALS: tuple[tuple[int, int, int], ...] = tuple(
    (target, relation, anchor)
    for target in range(NUM_BALLS)
    for relation in range(len(RELATIONS))
    for anchor in range(NUM_BALLS)
    if target != anchor
)
_HELD_OUT = {(COLOURS.index(c), RELATIONS.index(r)) for c, r in HELD_OUT_COMBINATIONS}
TEST_GOAL_IDS = tuple(i for i, (t, r, _) in enumerate(GOALS) if (t, r) in _HELD_OUT)
TRAIN_GOAL_IDS = tuple(i for i in range(len(GOALS)) if i not in set(TEST_GOAL_IDS))
GOAL_SPLITS = {"train": TRAIN_GOAL_IDS, "test": TEST_GOAL_IDS, "all": tuple(range(len(GOALS)))}
INSTRUCTION_SETS = {  # name: (templates, colour words, relation phrases)
    "train": (TRAIN_TEMPLATES, COLOURS, RELATION_PHRASES),
    "paraphrase": (PARAPHRASE_TEMPLATES, COLOURS, RELATION_PHRASES),
    "unseen": (UNSEEN_TEMPLATES, UNSEEN_COLOURS, UNSEEN_RELATION_PHRASES),
    "none": (NO_GOAL_TEMPLATES, COLOURS, RELATION_PHRASES),  # the control: what a prior does without the goal's words
}


def goal_text(goal_id: int, template: str = TRAIN_TEMPLATES[0], colours: tuple[str, ...] = COLOURS,
              relations: tuple[str, ...] = RELATION_PHRASES) -> str:
    """The instruction for a goal, e.g. 'Push the red ball to the left of the blue ball.'"""
    target, relation, anchor = GOALS[goal_id]
    return template.format(target=colours[target], relation=relations[relation], anchor=colours[anchor])


def goal_vector(goal_id: int) -> np.ndarray:
    """Factored goal encoding: one-hot target colour (5), relation (4), anchor colour (5)."""
    target, relation, anchor = GOALS[goal_id]
    vector = np.zeros(GOAL_DIM, dtype=np.float32)
    vector[target] = 1.0
    vector[NUM_BALLS + relation] = 1.0
    vector[NUM_BALLS + len(RELATIONS) + anchor] = 1.0
    return vector


def relation_holds(positions: np.ndarray, target: int, relation: int, anchor: int) -> bool:
    """Whether ball `target` is `RELATIONS[relation]` of ball `anchor` (positions: (10,) or (5, 2))."""
    positions = np.asarray(positions, dtype=np.float64).reshape(NUM_BALLS, 2)
    offset = positions[target] - positions[anchor]
    distance = float(np.linalg.norm(offset))
    if distance == 0.0 or distance >= RELATION_MAX_DISTANCE:
        return False
    return float(offset @ RELATION_VECTORS[relation]) / distance > RELATION_MIN_COSINE


def goal_holds(positions: np.ndarray, goal_id: int) -> bool:
    return relation_holds(positions, *GOALS[goal_id])


def describe_action(action: int) -> str:
    """Human-readable action, e.g. 'push the red ball left'."""
    ball, direction = divmod(int(action), len(DIRECTIONS))
    return f"push the {COLOURS[ball]} ball {DIRECTION_NAMES[direction]}"


def _model_xml() -> str:
    wall = TABLE_HALF_SIZE + 0.02
    walls = "".join(
        f'<geom name="wall_{name}" type="box" pos="{x} {y} 0" size="{sx} {sy} 0.04" '
        f'rgba="0.5 0.5 0.5 1" contype="1" conaffinity="0"/>'
        for name, x, y, sx, sy in [
            ("right", wall, 0, 0.02, wall + 0.02), ("left", -wall, 0, 0.02, wall + 0.02),
            ("back", 0, wall, wall + 0.02, 0.02), ("front", 0, -wall, wall + 0.02, 0.02),
        ]
    )
    # balls collide with balls, walls and the pusher; the pusher only with balls (it passes
    # through walls, so it can start a push from outside the table)
    balls = "".join(
        f'<body name="{colour}_ball">'
        f'<joint name="{colour}_x" type="slide" axis="1 0 0" damping="0.6"/>'
        f'<joint name="{colour}_y" type="slide" axis="0 1 0" damping="0.6"/>'
        f'<geom type="sphere" size="{BALL_RADIUS}" mass="0.1" rgba="{rgba}" contype="1" conaffinity="3"/>'
        f"</body>"
        for colour, rgba in zip(COLOURS, COLOUR_RGBA)
    )
    return f"""
<mujoco model="clevr_robot">
  <option timestep="{TIMESTEP}" integrator="Euler" gravity="0 0 0">
    <flag warmstart="disable"/>
  </option>
  <default><geom condim="1"/></default>
  <visual><global offwidth="640" offheight="640"/></visual>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1" diffuse="0.7 0.7 0.7"/>
    <camera name="main" pos="0 -1.3 1.6" xyaxes="1 0 0 0 0.8 0.6" fovy="45"/>
    <geom name="table" type="plane" pos="0 0 -{BALL_RADIUS}" size="{wall + 0.04} {wall + 0.04} 0.1"
          rgba="0.85 0.85 0.8 1" contype="0" conaffinity="0"/>
    {walls}
    {balls}
    <body name="pusher">
      <joint name="pusher_x" type="slide" axis="1 0 0" damping="0.6"/>
      <joint name="pusher_y" type="slide" axis="0 1 0" damping="0.6"/>
      <geom type="sphere" size="{PUSHER_RADIUS}" mass="0.1" rgba="0.3 0.3 0.3 1" contype="2" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="pusher_x" ctrlrange="-2 2" ctrllimited="true"/>
    <motor joint="pusher_y" ctrlrange="-2 2" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


# renderers still open at exit are closed while OpenGL is still up (else mujoco complains at
# exit); the hook is registered after the first context exists, so that it runs before the
# OpenGL backend's own exit hook
_RENDERING_ENVS: weakref.WeakSet = weakref.WeakSet()


def _close_renderers() -> None:
    for env in list(_RENDERING_ENVS):
        env.close()


class CLEVRRobotEnv(gym.Env):
    """Five balls, one pusher, a language goal. See the module docstring for the details."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        goal_split: Literal["train", "test", "all"] = "train",
        instructions: Literal["train", "paraphrase", "unseen"] = "train",
        goal_in_obs: bool = False,
        render_mode: str | None = None,
        width: int = 256,
        height: int = 256,
    ):
        if goal_split not in GOAL_SPLITS:
            raise ValueError(f"goal_split must be one of {sorted(GOAL_SPLITS)}, got {goal_split!r}")
        if instructions not in INSTRUCTION_SETS:
            raise ValueError(
                f"instructions must be one of {sorted(INSTRUCTION_SETS)}, got {instructions!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.goal_split = goal_split
        self.goal_ids = GOAL_SPLITS[goal_split]
        self.templates, self.colour_words, self.relation_phrases = INSTRUCTION_SETS[instructions]
        self.goal_in_obs = goal_in_obs
        self.render_mode = render_mode
        self.width, self.height = width, height

        self.model = mujoco.MjModel.from_xml_string(_model_xml())
        self.data = mujoco.MjData(self.model)
        self._lookahead = mujoco.MjData(self.model)  # scratch state for the scripted expert
        self._renderer: mujoco.Renderer | None = None

        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        low = np.full(OBS_DIM, -TABLE_HALF_SIZE, dtype=np.float32)
        high = np.full(OBS_DIM, TABLE_HALF_SIZE, dtype=np.float32)
        if goal_in_obs:
            low = np.concatenate([low, np.zeros(GOAL_DIM, dtype=np.float32)])
            high = np.concatenate([high, np.ones(GOAL_DIM, dtype=np.float32)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

        self.goal_id = self.goal_ids[0]
        self.goal_text = self._goal_text(self.templates[0])

    def _goal_text(self, template: str) -> str:
        return goal_text(self.goal_id, template, self.colour_words, self.relation_phrases)

    # --- physics -----------------------------------------------------------------------------
    @property
    def ball_positions(self) -> np.ndarray:
        """(5, 2) ball centres."""
        return self.data.qpos[:OBS_DIM].reshape(NUM_BALLS, 2).copy()

    def _push(self, data: mujoco.MjData, action: int) -> None:
        """Teleport the pusher behind the ball and push; every velocity is zero afterwards."""
        ball, direction_index = divmod(int(action), len(DIRECTIONS))
        direction = DIRECTIONS[direction_index]
        data.qpos[OBS_DIM:] = data.qpos[2 * ball : 2 * ball + 2] - PUSH_OFFSET * direction
        data.qvel[:] = 0.0
        data.ctrl[:] = direction
        mujoco.mj_step(self.model, data, nstep=PUSH_SUBSTEPS)
        data.ctrl[:] = 0.0
        data.qvel[:] = 0.0
        data.qpos[OBS_DIM:] = PUSHER_PARKING

    def simulate(self, action: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Ball positions (5, 2) after `action` from `positions` (default: now); the env is unchanged."""
        self._lookahead.qpos[:OBS_DIM] = (
            self.data.qpos[:OBS_DIM] if positions is None else np.asarray(positions).reshape(-1)
        )
        self._push(self._lookahead, action)
        return self._lookahead.qpos[:OBS_DIM].reshape(NUM_BALLS, 2).copy()

    def _sample_positions(self) -> np.ndarray:
        positions: list[np.ndarray] = []
        while len(positions) < NUM_BALLS:
            candidate = self.np_random.uniform(-SPAWN_HALF_SIZE, SPAWN_HALF_SIZE, size=2)
            if all(np.linalg.norm(candidate - p) >= SPAWN_MIN_DISTANCE for p in positions):
                positions.append(candidate)
        return np.stack(positions)

    # --- gymnasium API -------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        obs = self.data.qpos[:OBS_DIM].astype(np.float32)
        if self.goal_in_obs:
            obs = np.concatenate([obs, goal_vector(self.goal_id)])
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "goal_text": self.goal_text,
            "goal_id": self.goal_id,
            "goal": goal_vector(self.goal_id),
            "success": float(success),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Random ball layout and a goal that does not hold yet.

        options: ``{"goal_id": int}`` fixes the goal (any of ``GOALS``, also outside the split),
        ``{"template": str}`` fixes the instruction template.
        """
        super().reset(seed=seed)
        options = options or {}
        forced_goal = options.get("goal_id")
        if forced_goal is not None and not 0 <= int(forced_goal) < len(GOALS):
            raise ValueError(f"goal_id must be in [0, {len(GOALS)}), got {forced_goal}")
        while True:
            positions = self._sample_positions()
            if forced_goal is not None:
                candidates = [int(forced_goal)]
            else:
                candidates = list(self.np_random.permutation(self.goal_ids))
            open_goals = [g for g in candidates if not goal_holds(positions, g)]
            if open_goals:
                break
        self.goal_id = int(open_goals[0])
        template = options.get("template")
        if template is None:
            template = self.templates[int(self.np_random.integers(len(self.templates)))]
        self.goal_text = self._goal_text(template)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:OBS_DIM] = positions.reshape(-1)
        self.data.qpos[OBS_DIM:] = PUSHER_PARKING
        return self._obs(), self._info(False)

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {NUM_ACTIONS}), got {action!r}")
        self._push(self.data, int(action))
        success = goal_holds(self.data.qpos[:OBS_DIM], self.goal_id)
        return self._obs(), float(success), success, False, self._info(success)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            except Exception as error:  # no OpenGL context on this machine
                raise RuntimeError(
                    "CLEVR-Robot rendering needs an offscreen OpenGL context: set MUJOCO_GL=egl "
                    f"(or osmesa) and install the matching GL libraries ({error})"
                ) from error
            if not _RENDERING_ENVS:
                atexit.unregister(_close_renderers)
                atexit.register(_close_renderers)
            _RENDERING_ENVS.add(self)
        mujoco.mj_forward(self.model, self.data)
        self._renderer.update_scene(self.data, camera="main")
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def expert_action(env: gym.Env) -> int:
    """Scripted expert: one-step lookahead over pushes of the two balls the goal names.

    Takes a push that makes the goal hold if there is one; otherwise the push that brings the
    target-minus-anchor offset closest to 0.3 along the relation's direction. Pushing the anchor
    ball is considered too, which gets around walls and blocking balls.
    """
    clevr: CLEVRRobotEnv = env.unwrapped  # type: ignore[assignment]
    target, relation, anchor = GOALS[clevr.goal_id]
    ideal_offset = 0.3 * RELATION_VECTORS[relation]
    best_action, best_score = 0, np.inf
    for ball in (target, anchor):
        for direction in range(len(DIRECTIONS)):
            action = ball * len(DIRECTIONS) + direction
            positions = clevr.simulate(action)
            if relation_holds(positions, target, relation, anchor):
                return action
            score = float(np.linalg.norm(positions[target] - positions[anchor] - ideal_offset))
            if score < best_score:
                best_action, best_score = action, score
    return best_action


def register_clevr_robot() -> None:
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="envs.clevr_robot:CLEVRRobotEnv",
            max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
        )

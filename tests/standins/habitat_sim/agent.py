"""habitat_sim.agent: ActionSpec, ActuationSpec, AgentConfiguration, AgentState, Agent."""
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from .utils.common import quat_from_coeffs, quat_to_coeffs, quaternion


@dataclass
class ActuationSpec:
    amount: float
    constraint: Optional[float] = None


@dataclass
class ActionSpec:
    name: str
    actuation: Optional[ActuationSpec] = None


def _default_action_space():
    return dict(move_forward=ActionSpec("move_forward", ActuationSpec(amount=0.25)),
                turn_left=ActionSpec("turn_left", ActuationSpec(amount=10.0)),
                turn_right=ActionSpec("turn_right", ActuationSpec(amount=10.0)))


@dataclass
class AgentConfiguration:
    height: float = 1.5
    radius: float = 0.1
    sensor_specifications: List[Any] = field(default_factory=list)
    action_space: Dict[Any, ActionSpec] = field(default_factory=_default_action_space)
    body_type: str = "cylinder"


@dataclass
class AgentState:
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: Any = field(default_factory=lambda: quaternion(1, 0, 0, 0))
    sensor_states: Dict[str, Any] = field(default_factory=dict)


def _yaw(q: quaternion) -> float:
    x, y, z, w = quat_to_coeffs(q)
    return math.atan2(2 * (x * z + w * y), 1 - 2 * (x * x + y * y))


def _from_yaw(theta: float) -> quaternion:
    return quaternion(math.cos(theta / 2), 0.0, math.sin(theta / 2), 0.0)


class Agent:
    def __init__(self, agent_config: AgentConfiguration, move_filter_fn):
        self.agent_config = agent_config
        self.move_filter_fn = move_filter_fn
        self._pos = np.zeros(3)
        self._rot = quaternion(1, 0, 0, 0)
        self.initial_state = None

    def get_state(self) -> AgentState:
        return AgentState(self._pos.astype(np.float32), quaternion(self._rot.w, self._rot.x, self._rot.y, self._rot.z))

    @property
    def state(self) -> AgentState:
        return self.get_state()

    def set_state(self, state: AgentState, reset_sensors: bool = True, infer_sensor_states: bool = True,
                  is_initial: bool = False) -> None:
        pos = np.asarray(state.position, float)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValueError("position must be 3 finite floats")
        rot = state.rotation
        if isinstance(rot, (list, np.ndarray)):
            rot = quat_from_coeffs(rot)
        if abs(rot.norm() - 1) > 1e-4:
            raise ValueError("rotation must be a unit quaternion")
        self._pos, self._rot = pos, rot
        if is_initial:
            self.initial_state = state

    def controls(self, pos, yaw, name, amount, apply_filter=True):
        """(new position, new yaw, collided) of action `name` from (pos, yaw)."""
        if name == "turn_left":
            return pos, yaw + math.radians(amount), False
        if name == "turn_right":
            return pos, yaw - math.radians(amount), False
        if name == "move_forward":
            end = pos + amount * np.array([-math.sin(yaw), 0.0, -math.cos(yaw)])
            filtered = self.move_filter_fn(pos, end) if apply_filter else end
            collided = float(np.sum((filtered - pos) ** 2)) + 1e-5 < float(np.sum((end - pos) ** 2))
            return filtered, yaw, collided
        raise KeyError(f"no control named {name}")

    def act(self, action_id) -> bool:
        assert action_id in self.agent_config.action_space, f"No action {action_id} in action space"
        spec = self.agent_config.action_space[action_id]
        pos, yaw, collided = self.controls(self._pos, _yaw(self._rot), spec.name, spec.actuation.amount)
        self._pos, self._rot = pos, _from_yaw(yaw)
        return collided

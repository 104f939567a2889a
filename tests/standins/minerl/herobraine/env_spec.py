"""minerl.herobraine.env_spec.EnvSpec: abstract mission spec; register() and make() as in minerl 0.4."""
import abc
import importlib
from abc import abstractmethod

from minerl.herobraine.hero import spaces

# stands in for gym's registry (minerl's register() calls gym.register, which rejects duplicate ids)
GYM_REGISTRY: dict = {}


class EnvSpec(abc.ABC):
    U_SINGLE_AGENT_ENTRYPOINT = "minerl.env._singleagent:_SingleAgentEnv"

    def __init__(self, name, max_episode_steps=None, reward_threshold=None, agent_count=None):
        self.name = name
        self.max_episode_steps = max_episode_steps
        self.reward_threshold = reward_threshold
        self.agent_count = 1 if agent_count is None else agent_count
        self.is_single_agent = agent_count is None
        self.reset()

    def reset(self):
        self.observables = self.create_observables()
        self.actionables = self.create_actionables()
        self.rewardables = self.create_rewardables()
        self.agent_handlers = self.create_agent_handlers()
        self.monitors = self.create_monitors()
        self.server_initial_conditions = self.create_server_initial_conditions()
        self.server_world_generators = self.create_server_world_generators()
        self.server_decorators = self.create_server_decorators()
        self.server_quit_producers = self.create_server_quit_producers()
        self.agent_start = [self.create_agent_start()]
        assert len({o.to_string() for o in self.observables}) == len(self.observables)
        assert len({a.to_string() for a in self.actionables}) == len(self.actionables)
        self._observation_space = spaces.Dict({o.to_string(): o.space for o in self.observables})
        self._action_space = spaces.Dict({a.to_string(): a.space for a in self.actionables})

    @abstractmethod
    def create_observables(self): ...

    @abstractmethod
    def create_actionables(self): ...

    @abstractmethod
    def create_rewardables(self): ...

    @abstractmethod
    def create_agent_start(self): ...

    @abstractmethod
    def create_agent_handlers(self): ...

    @abstractmethod
    def create_monitors(self): ...

    @abstractmethod
    def create_server_initial_conditions(self): ...

    @abstractmethod
    def create_server_decorators(self): ...

    @abstractmethod
    def create_server_world_generators(self): ...

    @abstractmethod
    def create_server_quit_producers(self): ...

    @abstractmethod
    def is_from_folder(self, folder: str) -> bool: ...

    @abstractmethod
    def determine_success_from_rewards(self, rewards: list) -> bool: ...

    @abstractmethod
    def get_docstring(self): ...

    @property
    def observation_space(self):
        return self._observation_space

    @property
    def action_space(self):
        return self._action_space

    def _env_kwargs(self):
        return {"env_spec": self}

    def register(self, fake=False):
        env_id = ("Fake" if fake else "") + self.name
        if env_id in GYM_REGISTRY:
            raise RuntimeError(f"Cannot re-register id: {env_id}")
        GYM_REGISTRY[env_id] = dict(entry_point=self.U_SINGLE_AGENT_ENTRYPOINT, kwargs=self._env_kwargs(),
                                    max_episode_steps=self.max_episode_steps)

    def make(self, fake=False, **additional_kwargs):
        module, cls = self.U_SINGLE_AGENT_ENTRYPOINT.split(":")
        return getattr(importlib.import_module(module), cls)(**self._env_kwargs(), **additional_kwargs)

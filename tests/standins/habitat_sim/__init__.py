"""API-faithful stand-in for habitat_sim (tests only): the names, signatures and behaviours
generators/habitat/real.py relies on, over a trivial world. The navmesh is the scene mesh's floor
rectangle (x/z bounds, z-up files turned y-up like habitat does for .glb), paths are straight lines and
frames are colours computed from the pose. Scenes whose file name contains "nonav" get no navmesh."""
from . import agent, errors, nav, utils
from .agent import AgentState
from .nav import NavMeshSettings, ShortestPath
from .sensor import CameraSensorSpec, SensorSubType, SensorType
from .sim import Configuration, Simulator, SimulatorConfiguration

__version__ = "0.0.0-standin"
__all__ = ["agent", "errors", "nav", "utils", "AgentState", "NavMeshSettings", "ShortestPath", "CameraSensorSpec",
           "SensorSubType", "SensorType", "Configuration", "Simulator", "SimulatorConfiguration"]

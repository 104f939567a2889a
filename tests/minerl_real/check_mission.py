"""Check generators/minecraft/real.py against the REAL minerl 0.4.4 Python layer (no Minecraft, no Java).

Run with the python of the venv that scripts/setup_minerl_venv.sh builds, from the repository root:

    PYTHONPATH=$PWD /tmp/minerl-venv/bin/python tests/minerl_real/check_mission.py [--collector-env PATH]

It builds our SimpleExplore env spec with minerl's own classes, registers it with gym, renders the
mission XML with minerl's template, validates it against Malmo's Mission.xsd shipped in the package,
and checks that it carries the collector's settings; our action dicts must lie in minerl's action space and
become the collector's Malmo commands (jump held on turns) through a real, unstarted minerl env.
With --collector-env (the authors' env.py from wilson1yan/collect-minecraft), it also builds their
spec and requires the two missions to differ only by our extra pose observation. Exit 0 = all good;
the last line is JSON.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys

from lxml import etree

import minerl
from minerl.herobraine.env_specs.simple_embodiment import SIMPLE_KEYBOARD_ACTION

from generators.minecraft import protocol as P
from generators.minecraft import real

NS = "{http://ProjectMalmo.microsoft.com}"
# The collector's generator options that differ from Minecraft 1.11's defaults (env.py at commit 62919a4).
COLLECTOR_CHANGES = {"seaLevel": 1, "useDungeons": False, "useStrongholds": False, "useVillages": False,
                     "useMineShafts": False, "useTemples": False, "useMonuments": False, "useMansions": False,
                     "useRavines": False, "useWaterLakes": False, "useLavaLakes": False, "fixedBiome": 6,
                     "biomeSize": 8, "riverSize": 1}
SOME_DEFAULTS = {"useCaves": True, "useLavaOceans": False, "baseSize": 8.5, "stretchY": 12.0, "dungeonChance": 8,
                 "coordinateScale": 684.412, "lapisSpread": 16}


def canonical(xml: str) -> list[str]:
    """Mission XML without layout whitespace, generator options re-serialised: lines for a diff."""
    root = etree.fromstring(xml.encode())
    for el in root.iter():
        el.text = el.text.strip() or None if el.text else None
        el.tail = None
        if "generatorOptions" in el.attrib:
            el.attrib["generatorOptions"] = json.dumps(json.loads(el.attrib["generatorOptions"]), sort_keys=True)
    return etree.tostring(root, pretty_print=True).decode().splitlines()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--collector-env", help="the authors' env.py, to diff the two missions")
    args = ap.parse_args()
    out: dict = {"minerl": getattr(minerl, "__version__", None) or "0.4.4"}

    spec = real.make_env_spec(P.RESOLUTION, P.SWAMP_BIOME_ID)
    real.make_env_spec(P.RESOLUTION, P.SWAMP_BIOME_ID)          # gym.register raises on a second registration
    import gym
    assert real.ENV_NAME in gym.envs.registry.env_specs, "SimpleExplore-v0 is not registered with gym"

    xml = spec.to_xml()
    xsd = pathlib.Path(minerl.__file__).parent / "Malmo" / "Schemas" / "Mission.xsd"
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    root = etree.fromstring(xml.encode())
    if not schema.validate(root):
        print(schema.error_log, file=sys.stderr)
        raise AssertionError("our mission XML does not validate against Malmo's Mission.xsd")
    out["xsd_valid"] = True

    server = root.find(f"{NS}ServerSection")
    gens = server.find(f"{NS}ServerHandlers")
    assert gens.find(f"{NS}BiomeGenerator") is None, "the collector does not use BiomeGenerator"
    (dwg,) = gens.findall(f"{NS}DefaultWorldGenerator")
    assert dwg.get("forceReset") == "true"
    options = json.loads(dwg.get("generatorOptions"))
    for k, v in {**COLLECTOR_CHANGES, **SOME_DEFAULTS}.items():
        assert options[k] == v and type(options[k]) is type(v), (k, options[k], v)
    assert len(options) == 79, len(options)
    assert [el.tag for el in gens] == [f"{NS}DefaultWorldGenerator"], "no decorators or quit producers"
    cond = server.find(f"{NS}ServerInitialConditions")
    assert cond.find(f"{NS}Time/{NS}AllowPassageOfTime").text.strip() == "false"
    assert cond.find(f"{NS}Time/{NS}StartTime") is None
    assert cond.find(f"{NS}AllowSpawning").text.strip() == "true"
    agent = root.find(f"{NS}AgentSection")
    assert agent.get("mode") == "Survival"
    handlers = [el.tag.replace(NS, "") for el in agent.find(f"{NS}AgentHandlers") if isinstance(el.tag, str)]
    assert handlers == ["FileBasedPerformanceProducer", "ObservationFromDamage", "PauseCommand", "VideoProducer",
                        "ObservationFromFullStats", "HumanLevelCommands", "CameraCommands"], handlers
    video = agent.find(f"{NS}AgentHandlers/{NS}VideoProducer")
    assert (int(video.find(f"{NS}Width").text), int(video.find(f"{NS}Height").text)) == (128, 128)
    assert video.get("want_depth") == "false"
    out["generator_options"] = {k: options[k] for k in COLLECTOR_CHANGES}

    # our MineRL action dicts, from the real no-op, are in the real action space
    space = spec.action_space
    assert set(space.spaces) == set(SIMPLE_KEYBOARD_ACTION) | {"camera"}
    expect = {P.FORWARD: (1, 1, 0.0), P.LEFT: (0, 1, -20.0), P.RIGHT: (0, 1, 20.0), P.NOOP: (0, 0, 0.0)}
    for a, (fwd, jump, yaw) in expect.items():
        d = real.action_dict(space.noop(), a)
        assert space.contains(d), (a, d)
        assert (d["forward"], d["jump"], float(d["camera"][1]), float(d["camera"][0])) == (fwd, jump, yaw, 0.0)
        assert all(d[k] == 0 for k in ("back", "left", "right", "sneak", "sprint", "attack"))
    out["actions_in_space"] = True

    # the real env object (constructing it starts no Minecraft) turns our actions into the collector's
    # Malmo commands; _process_action is minerl 0.4.4's internal action -> command step of env.step
    b = real.MineRLBackend(P.RESOLUTION)
    commands = {}
    for a in (P.FORWARD, P.LEFT, P.RIGHT):
        d = real.action_dict(b.env.action_space.noop(), a)
        commands[P.ACTION_NAMES[a]] = b.env._process_action("agent_0", d).splitlines()
    assert {"forward 1", "jump 1", "camera 0.0 0.0"} <= set(commands["forward_jump"])
    assert {"forward 0", "jump 1", "camera 0.0 -20.0"} <= set(commands["left_jump"])
    assert {"forward 0", "jump 1", "camera 0.0 20.0"} <= set(commands["right_jump"])
    out["malmo_commands"] = {k: [c for c in v if not c.endswith(" 0")] for k, v in commands.items()}

    flooded = real.simple_explore_class()(resolution=(64, 64), biome_id=3, sea_level=63, name="SimpleExploreCheck-v0")
    opts = json.loads(etree.fromstring(flooded.to_xml().encode()).find(
        f"{NS}ServerSection/{NS}ServerHandlers/{NS}DefaultWorldGenerator").get("generatorOptions"))
    assert (opts["seaLevel"], opts["fixedBiome"]) == (63, 3)

    if args.collector_env:
        mod_spec = importlib.util.spec_from_file_location("collector_env", args.collector_env)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        theirs = mod.SimpleExplore(resolution=(P.RESOLUTION, P.RESOLUTION), biomes=[P.SWAMP_BIOME_ID])
        import difflib
        diff = [line for line in difflib.unified_diff(canonical(theirs.to_xml()), canonical(xml), lineterm="", n=0)
                if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        assert diff == ["+      <ObservationFromFullStats/>"], diff
        assert list(theirs.action_space.spaces) == list(space.spaces)
        out["collector_diff"] = diff
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stand-in for the `minerl` package (0.4.x API) used by generators/minecraft/real.py's tests.

It mirrors the modules and signatures the adapter imports (herobraine.env_spec.EnvSpec,
env_specs.simple_embodiment.SimpleEmbodimentEnvSpec, hero.handlers, hero.mc.INVERSE_KEYMAP,
hero.spaces) and replaces Minecraft with a tiny kinematic fake in env._singleagent.
"""
__version__ = "0.4.4"

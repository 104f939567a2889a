"""Minecraft-200k: a player walking and turning at random through a swamp (TECO, Yan et al. 2022).

protocol.py holds the collection protocol (actions, policy, redraws); world.py, render.py and
embedded.py the pip-only voxel backend; real.py the MineRL backend; spec.py and cli.py `gen-minecraft`.
"""

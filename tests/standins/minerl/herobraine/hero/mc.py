"""minerl.herobraine.hero.mc: Minecraft key codes -> MineRL command names (subset)."""
KEYMAP = {
    "17": "forward",
    "31": "back",
    "30": "left",
    "32": "right",
    "57": "jump",
    "42": "sneak",
    "29": "sprint",
    "-100": "attack",
    "-99": "use",
}
INVERSE_KEYMAP = {KEYMAP[key]: key for key in KEYMAP}

"""Driver photos for made-up drivers: a small SVG portrait drawn from a seed, no external files.

The same seed always draws the same bytes, so a driver keeps their face on every page load and
caches can keep it for a day.
"""

from __future__ import annotations

import hashlib

BACKGROUNDS = ("#e0f2f1", "#e3f2fd", "#fff3e0", "#f3e5f5", "#e8f5e9", "#fce4ec", "#ede7f6", "#fffde7")
SKINS = ("#f1c27d", "#e0ac69", "#c68642", "#8d5524", "#ffdbac", "#d2a16e")
JACKETS = ("#00aa13", "#00b14f", "#1e88e5", "#f4511e", "#6d4c41", "#37474f", "#8e24aa", "#fbc02d")
HAIR = ("#2b1b12", "#1b1b1b", "#4a2f1d", "#3b3024")
HIJABS = ("#546e7a", "#ad1457", "#00897b", "#5d4037", "#283593", "#f9a825")

# Headwear drawn over the head (cx 64, cy 56, r 22): a ride-hailing helmet, short hair, a hijab.
_HEADWEAR = (
    '<path d="M39 50a25 25 0 0 1 50 0v3H39z" fill="{a}"/><rect x="44" y="45" width="40" height="5"'
    ' rx="2.5" fill="#263238" opacity=".55"/>',
    '<path d="M42 54c0-16 10-22 22-22s22 6 22 22c-4-8-12-11-22-11s-18 3-22 11z" fill="{h}"/>',
    '<path d="M38 58c0-18 12-28 26-28s26 10 26 28v30H38z" fill="{a}"/>',
)


def svg(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).digest()
    style = h[0] % len(_HEADWEAR)
    skin, jacket = SKINS[h[1] % len(SKINS)], JACKETS[h[2] % len(JACKETS)]
    accent = HIJABS[h[3] % len(HIJABS)] if style == 2 else jacket
    eyes, smile = 7 + h[4] % 3, 62 + h[5] % 6  # eye spacing, mouth depth
    headwear = _HEADWEAR[style].format(a=accent, h=HAIR[h[6] % len(HAIR)])
    face = (
        f'<circle cx="64" cy="56" r="22" fill="{skin}"/>'
        f'<circle cx="{64 - eyes}" cy="55" r="2.4" fill="#212121"/>'
        f'<circle cx="{64 + eyes}" cy="55" r="2.4" fill="#212121"/>'
        f'<path d="M56 63q8 {smile - 62 + 4} 16 0" stroke="#5d4037" stroke-width="2" fill="none"'
        ' stroke-linecap="round"/>'
    )
    if style == 2:  # the hijab frames the face, so it is drawn first
        body_and_head = headwear + face
    else:
        body_and_head = f'<rect x="57" y="72" width="14" height="14" fill="{skin}"/>' + face + headwear
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128" width="128" height="128"'
        ' role="img" aria-label="driver">'
        f'<rect width="128" height="128" rx="64" fill="{BACKGROUNDS[h[7] % len(BACKGROUNDS)]}"/>'
        f'<path d="M20 128c0-28 20-42 44-42s44 14 44 42z" fill="{jacket}"/>'
        '<path d="M56 86l8 12 8-12z" fill="#ffffff" opacity=".85"/>'
        f"{body_and_head}</svg>"
    )

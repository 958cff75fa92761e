"""A QR code drawn in the terminal from the text it encodes, for a phone to scan off the screen.

Two modules per character (the upper and lower half blocks), so a WhatsApp code of ~190 characters
(version 8, 49 modules) fits in 53 columns and 27 lines. On a terminal the code is drawn black on white
whatever the terminal's own colours, so it scans on dark and light themes alike (a phone reads dark
modules on a light ground; an inverted code fails on many). Piped or with NO_COLOR set, it is plain
text: a block wherever a module is dark.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TextIO

import segno

# Two modules of quiet zone: the standard asks four for print, but every line counts on a terminal and
# the light border drawn around the code is what scanners look for.
QUIET_ZONE = 2
# Black ink on a bright white ground; reset at each line's end so nothing leaks into the next output.
INK_ON_WHITE = "\x1b[30;107m"
RESET = "\x1b[0m"
# (upper module dark, lower module dark) -> the character that draws them.
HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def matrix(code: str) -> list[list[bool]]:
    """The code's modules, quiet zone included, dark as True. Never a Micro QR: phones do not read those."""
    symbol = segno.make(code, micro=False)
    return [[bool(module) for module in row] for row in symbol.matrix_iter(scale=1, border=QUIET_ZONE)]


def draw(code: str, *, colour: bool) -> list[str]:
    """The lines that draw `code`; `colour`: black on white, else plain blocks for dark modules."""
    modules = matrix(code)
    if len(modules) % 2:
        modules.append([False] * len(modules[0]))  # the last line's lower half: quiet zone
    lines = [
        "".join(HALF_BLOCKS[upper, lower] for upper, lower in zip(top, bottom, strict=True))
        for top, bottom in zip(modules[::2], modules[1::2], strict=True)
    ]
    return [f"{INK_ON_WHITE}{line}{RESET}" for line in lines] if colour else lines


def wants_colour(out: TextIO) -> bool:
    """Colours only for a terminal, and never against the user's NO_COLOR (no-color.org)."""
    return out.isatty() and not os.environ.get("NO_COLOR")


def print_qr(code: str, out: TextIO) -> None:
    lines: Sequence[str] = draw(code, colour=wants_colour(out))
    out.write("\n".join(lines) + "\n")
    out.flush()

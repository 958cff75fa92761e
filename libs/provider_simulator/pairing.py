"""What the simulated phone shows while a session waits to be linked: QR texts shaped like WhatsApp's, their
PNG images, and pairing codes.

The PNG is a stand-in: a QR-looking grid drawn from the text's hash (three finder squares, data bits),
not a scannable QR code, which would need an encoder this project does not carry. Nothing scans it: a
test or a person "scans" through the control route (`POST /_sim/sessions/{s}/scan`), and a terminal that
wants to draw a real code has the text.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import struct
import zlib

_MODULES = 29  # a version-3 QR is 29 x 29 modules
_SCALE = 4
_BORDER = 4  # the quiet zone, in modules
_FINDER = 7
# Pairing codes use WhatsApp's alphabet: no 0/O, 1/I look-alikes.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"


def new_qr_text() -> str:
    """A text shaped like the one WhatsApp Web encodes: `2@<ref>,<noise key>,<identity key>,<adv secret>`."""
    parts = [base64.b64encode(os.urandom(32)).decode() for _ in range(3)]
    return "2@" + secrets.token_urlsafe(36) + "," + ",".join(parts)


def new_pairing_code() -> str:
    """An 8-character code shown as `ABCD-EFGH`, as WAHA shows Baileys' pairing codes."""
    code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
    return f"{code[:4]}-{code[4:]}"


def _dark(row: int, col: int, bits: bytes) -> bool:
    for top, left in ((0, 0), (0, _MODULES - _FINDER), (_MODULES - _FINDER, 0)):
        r, c = row - top, col - left
        if 0 <= r < _FINDER and 0 <= c < _FINDER:
            ring = min(r, c, _FINDER - 1 - r, _FINDER - 1 - c)
            return ring != 1  # dark outer ring, light ring, dark 3 x 3 centre
    index = row * _MODULES + col
    return bool(bits[(index // 8) % len(bits)] >> (index % 8) & 1)


def qr_png(text: str) -> bytes:
    """An 8-bit grayscale PNG of the stand-in grid for `text` (deterministic: one text, one image)."""
    bits = hashlib.sha512(text.encode()).digest() * 2
    side = (_MODULES + 2 * _BORDER) * _SCALE
    rows = []
    for y in range(side):
        module_row = y // _SCALE - _BORDER
        line = bytearray([0])  # filter type: none
        for x in range(side):
            module_col = x // _SCALE - _BORDER
            inside = 0 <= module_row < _MODULES and 0 <= module_col < _MODULES
            line.append(0 if inside and _dark(module_row, module_col, bits) else 255)
        rows.append(bytes(line))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

"""What the simulated phone shows while a session waits to be linked: QR texts shaped like WhatsApp's, their
PNG images, and pairing codes.

The PNG is a real QR code of the text (drawn with segno: 4 pixels a module, the standard 4-module quiet
zone), so a phone's camera reads the same text that `auth/qr?format=raw` gives. Nothing WhatsApp knows is
behind it: a test or a person "scans" through the control route (`POST /_sim/sessions/{s}/scan`, or
`whatlead sim scan <instance id>`).
"""

from __future__ import annotations

import base64
import io
import os
import secrets

import segno

SCALE = 4  # pixels a module
QUIET_ZONE = 4  # modules of light border, as the QR standard asks
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


def qr_png(text: str) -> bytes:
    """A black-on-white PNG of the QR code of `text` (deterministic: one text, one image). Never a Micro
    QR, which phones do not read."""
    image = io.BytesIO()
    segno.make(text, micro=False).save(image, kind="png", scale=SCALE, border=QUIET_ZONE)
    return image.getvalue()

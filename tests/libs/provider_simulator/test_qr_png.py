"""The simulator's QR picture is a real QR code of the raw code it shows: read back pixel by pixel (with a
small PNG reader, no image library), it is segno's matrix of that text, 4 pixels a module, inside a
4-module quiet zone, in every shape WAHA serves it (the PNG itself, and `{mimetype, data}` as JSON)."""

from __future__ import annotations

import base64
import struct
import zlib

import aiohttp
import segno

from libs.provider_simulator import ProviderSimulator
from libs.provider_simulator.pairing import QUIET_ZONE, SCALE, new_qr_text, qr_png
from libs.providers import WahaProvider
from tests.libs.provider_simulator.conftest import API_KEY

SESSION = "phone-qr"


def png_pixels(png: bytes) -> list[list[bool]]:
    """The dark pixels of a 1-bit grayscale, non-interlaced PNG (rows filtered with None or Up)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    chunks: dict[bytes, bytes] = {}
    offset = 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        assert struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])[0] == zlib.crc32(
            kind + data
        )
        chunks[kind] = chunks.get(kind, b"") + data
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour_type, interlace) == (1, 0, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = (width + 7) // 8
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        assert kind in (0, 2)
        if kind == 2:
            line = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        rows.append([not (line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])  # 0 is black
        previous = line
    return rows


def modules_of(pixels: list[list[bool]], scale: int) -> list[list[bool]]:
    """One value per `scale` x `scale` square, each square checked to be of one colour."""
    size = len(pixels)
    assert size % scale == 0 and all(len(row) == size for row in pixels)
    modules = []
    for top in range(0, size, scale):
        row = []
        for left in range(0, size, scale):
            square = {pixels[top + dy][left + dx] for dy in range(scale) for dx in range(scale)}
            assert len(square) == 1
            row.append(square.pop())
        modules.append(row)
    return modules


def segno_modules(text: str) -> list[list[bool]]:
    matrix = segno.make(text, micro=False).matrix
    width = len(matrix[0]) + 2 * QUIET_ZONE
    light = [[False] * width for _ in range(QUIET_ZONE)]
    return (
        light
        + [[False] * QUIET_ZONE + [bool(m) for m in row] + [False] * QUIET_ZONE for row in matrix]
        + light
    )


def test_the_png_is_the_qr_code_of_the_text():
    text = new_qr_text()

    png = qr_png(text)

    assert modules_of(png_pixels(png), SCALE) == segno_modules(text)
    assert qr_png(text) == png  # one text, one image


async def test_waha_routes_serve_the_picture_of_the_raw_code_they_show(
    simulator: ProviderSimulator, waha: WahaProvider, http: aiohttp.ClientSession
) -> None:
    await waha.start_session(SESSION)
    qr = await waha.get_qr(SESSION)  # raw code and PNG, as the adapter reads them
    assert qr is not None
    assert modules_of(png_pixels(qr.png), SCALE) == segno_modules(qr.raw)

    url, headers = f"{simulator.base_url}/api/{SESSION}/auth/qr", {"X-Api-Key": API_KEY}
    async with http.get(url, headers={**headers, "Accept": "application/json"}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["mimetype"] == "image/png"
    assert base64.b64decode(answer["data"]) == qr.png

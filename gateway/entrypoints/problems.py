"""RFC 9457 problems: every refusal the gateway answers over HTTP, naming no exception, secret or body."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.responses import Response

PROBLEM = "application/problem+json"


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return Response(json.dumps(body), status, headers=headers, media_type=PROBLEM)

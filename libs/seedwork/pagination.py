"""Opaque cursor pagination over id-ordered (UUIDv7, so creation-ordered) rows."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from libs.seedwork.errors import InvalidArgument
from libs.seedwork.ids import is_valid_id

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class PageRequest:
    after_id: str | None
    size: int


def page_request(page_size: int, page_token: str) -> PageRequest:
    """Validate what a client sent; 0 means the default size."""
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument.of("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    after_id = None
    if page_token:
        try:
            after_id = base64.urlsafe_b64decode(page_token.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            after_id = None
        if after_id is None or not is_valid_id(after_id):
            raise InvalidArgument.of("page_token", "is not a token this service returned")
    return PageRequest(after_id=after_id, size=page_size or DEFAULT_PAGE_SIZE)


def next_page_token(last_id: str | None, *, full_page: bool) -> str:
    """A token for the page after `last_id`, or '' when there is nothing more."""
    if not full_page or last_id is None:
        return ""
    return base64.urlsafe_b64encode(last_id.encode()).decode()


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str

    @classmethod
    def of(cls, items: Sequence[T], request: PageRequest, id_of: Callable[[T], str]) -> Page[T]:
        """A page as a repository returned it for `request`: a full page may have a next one."""
        last = id_of(items[-1]) if items else None
        return cls(list(items), next_page_token(last, full_page=len(items) == request.size))

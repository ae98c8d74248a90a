"""clipserve's exceptions: one base class, one subclass per kind of failure.

The in-process engine and the HTTP client raise the same classes for the same errors, with the
engine's message (which names the bad input: a file, ``images[3]``, ``texts[0]``, ...).
"""
from __future__ import annotations

from typing import Optional


class ClipserveError(Exception):
    """Base class of every clipserve error.

    Attributes:
        code: the engine's error kind (``"invalid_argument"``, ``"not_found"``, ...).
        status: the HTTP status when the error came from a server, else ``None``.
    """

    code = "internal"

    def __init__(self, message: str = "", *, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidInput(ClipserveError, ValueError):
    """Bad input: an undecodable image, invalid text, a wrong shape or argument (HTTP 400)."""

    code = "invalid_argument"


class NotFound(ClipserveError, LookupError):
    """A file, model or label set that does not exist (HTTP 404)."""

    code = "not_found"


class IoError(ClipserveError, OSError):
    """The operating system or the network failed (read error, disk full, refused connection)."""

    code = "io_error"


class ConnectionFailed(IoError):
    """Client only: the server could not be reached, or did not answer in time."""

    code = "io_error"


class Unsupported(ClipserveError):
    """Valid input that clipserve does not handle (e.g. a 16-bit TIFF, as Pillow's resize)."""

    code = "unsupported"


class TooLarge(ClipserveError):
    """Input over a limit: decompression-bomb guard, request body size (HTTP 413)."""

    code = "too_large"


class Overloaded(ClipserveError):
    """The engine's queue is full; retry later (HTTP 429)."""

    code = "overloaded"


class Unavailable(ClipserveError):
    """Not ready yet (warming up), shutting down, or the model was closed (HTTP 503)."""

    code = "unavailable"


class Unauthorized(ClipserveError):
    """The server wants an API key, or this one is wrong (HTTP 401; client only)."""

    code = "unauthorized"


class InternalError(ClipserveError):
    """Anything else (a bug: please report it)."""

    code = "internal"


_BY_CODE = {
    cls.code: cls
    for cls in (InvalidInput, NotFound, IoError, Unsupported, TooLarge, Overloaded, Unavailable,
                Unauthorized, InternalError)
}
_BY_STATUS = {400: InvalidInput, 401: Unauthorized, 404: NotFound, 413: TooLarge,
              415: InvalidInput, 429: Overloaded, 503: Unavailable}


def error_for(code: Optional[str], status: Optional[int], message: str) -> ClipserveError:
    """The exception for a server error body's ``type`` (preferred) or its HTTP status."""
    cls = _BY_CODE.get(code or "")
    if cls is None:
        cls = _BY_STATUS.get(status or 0, InternalError if (status or 500) >= 500 else InvalidInput)
    return cls(message, status=status)

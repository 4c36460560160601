"""The product's exceptions, one tree.

ReloveError
├── ConfigError            a setting is missing or invalid
├── SchemaError            the database schema is missing or outdated
├── NotFound               a user, segment, broadcast … does not exist
├── InvalidInput           user-supplied input is malformed (keys, values, filters, templates)
│   ├── InvalidKey         a marker / context key breaks the key rules
│   └── FilterError        a filter text or tree does not parse or type-check
├── DocumentTooLarge       a markers / context write would pass the size limit
├── Unauthorized           no credentials, or bad ones (an unknown or revoked API token)
├── PermissionDenied       the credentials lack the scope or role the action needs
├── Conflict               the action conflicts with the current state (a request in flight)
├── RateLimited            too many requests; ``retry_after`` seconds until the next is allowed
├── PayloadTooLarge        a request body over its size limit
└── DatabaseUnavailable    the database stayed unreachable past RELOVE_DB_OUTAGE_GRACE

Library errors are converted at the boundary with ``raise … from e``.
"""

from __future__ import annotations


class ReloveError(Exception):
    """Base of every error the product raises on purpose; its text is meant for people."""


class ConfigError(ReloveError):
    pass


class SchemaError(ReloveError):
    pass


class NotFound(ReloveError):
    pass


class InvalidInput(ReloveError):
    pass


class InvalidKey(InvalidInput):
    pass


class FilterError(InvalidInput):
    """A filter that does not parse or type-check; ``position`` is 1-based when known."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class DocumentTooLarge(ReloveError):
    pass


class Unauthorized(ReloveError):
    pass


class PermissionDenied(ReloveError):
    pass


class Conflict(ReloveError):
    pass


class RateLimited(ReloveError):
    """Too many requests; retry after ``retry_after`` seconds (a whole number, at least 1)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ReloveError):
    pass
class DatabaseUnavailable(ReloveError):
    """The database stayed unreachable longer than the work could wait for it."""

"""Request and response bodies shared by the API's resources (pydantic v2). Requests refuse
unknown fields; ids are 64-bit like Telegram's."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictFloat, StrictInt
from pydantic import StrictStr as Str

from relove.errors import InvalidInput

INT64_MAX = 2**63 - 1
Int64 = Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
UserId = Annotated[int, Path(ge=1, le=INT64_MAX, description="The user's Telegram id.")]
Scalar = Str | StrictInt | StrictFloat | StrictBool
Gender = Literal["male", "female", "unknown"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error (RFC 9457 problem details); ``code`` is stable, ``detail`` is for people."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    position: int | None = Field(None, description="1-based position of a filter error.")
    retry_after: int | None = None
    errors: list[dict[str, Any]] | None = None


# -- users -----------------------------------------------------------------------------------------
class User(BaseModel):
    """A user; with ``fields=`` only the fields asked for (``id`` always) are present."""

    id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_active: bool | None = None
    gender: Gender | None = None
    markers: dict[str, JsonValue] | None = None
    context: dict[str, JsonValue] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_seen_at: datetime | None = None


class UserList(BaseModel):
    users: list[User]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; absent on the last page."
    )
    count: int | None = Field(None, description="All users matching the filter (`count=true`).")


ListOfScalars = Annotated[list[Scalar], Field(min_length=1, max_length=100)]


class DocumentOps(Strict):
    """Atomic operations on one document (dotted keys reach nested objects)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    set: dict[str, JsonValue] | None = Field(None, alias="$set", description="Set values.")
    set_once: dict[str, JsonValue] | None = Field(
        None, alias="$set_once", description="Set values only where the key is missing."
    )
    unset: Annotated[list[str], Field(max_length=100)] | None = Field(
        None, alias="$unset", description="Remove keys."
    )
    inc: dict[str, StrictInt | StrictFloat] | None = Field(
        None, alias="$inc", description="Add to numbers (a missing key counts as 0)."
    )
    add: dict[str, ListOfScalars] | None = Field(
        None, alias="$add", description="Add values to lists (each once)."
    )
    remove: dict[str, ListOfScalars] | None = Field(
        None, alias="$remove", description="Remove values from lists."
    )


class UserPatch(Strict):
    markers: DocumentOps | None = None
    context: DocumentOps | None = None
    gender: Gender | None = None
    is_active: bool | None = None


class BatchItem(UserPatch):
    id: Annotated[int, Field(ge=1, le=INT64_MAX, description="The user's Telegram id.")]


class UserBatch(Strict):
    items: Annotated[list[BatchItem], Field(min_length=1, max_length=1000)]


class BatchItemResult(BaseModel):
    index: int
    id: int
    status: int = Field(description="200, or the status the item alone would have had.")
    error: Problem | None = None


class BatchResult(BaseModel):
    succeeded: int
    failed: int
    results: list[BatchItemResult]


# -- cursors -----------------------------------------------------------------------------------
def encode_id_cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_id_cursor(kind: str, cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != kind:
            raise ValueError(prefix)
        number = int(value)
        if not -INT64_MAX <= number <= INT64_MAX:
            raise ValueError(value)
        return number
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"invalid cursor {cursor[:40]!r}") from None

"""CSV export of the users a filter matches, streamed in pages of ``PAGE`` users (constant
memory). The same columns as ``relove users find --csv``; names that a spreadsheet would read
as a formula get a leading apostrophe.

Interim: the bulk import/export room (relove/bulk) replaces this with its streamed export
(flattened ``markers.<key>`` columns) when it lands."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove.segments.service import find_users

PAGE = 1000
#: a cell starting with one of these is a formula to spreadsheet programs (CSV injection)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ["id", "username", "first_name", "last_name", "is_active", "gender", "created_at",
           "updated_at", "last_seen_at", "markers", "context"]


async def users_csv(
    sessions: async_sessionmaker[AsyncSession], filter_text: str | None
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    yield "\ufeff" + buffer.getvalue()  # a BOM: spreadsheet programs then read UTF-8
    after: int | None = None
    while True:
        async with sessions() as session:
            users = await find_users(session, filter_text, limit=PAGE, after_id=after)
        if not users:
            return
        buffer.seek(0)
        buffer.truncate()
        for user in users:
            row = user.to_dict()
            row["markers"] = json.dumps(row["markers"], ensure_ascii=False)
            row["context"] = json.dumps(row["context"], ensure_ascii=False)
            for name in ("first_name", "last_name"):
                if isinstance(row[name], str) and row[name].startswith(FORMULA_START):
                    row[name] = "'" + row[name]
            writer.writerow(row)
        yield buffer.getvalue()
        after = users[-1].id

"""The JSON response of the big answers (a 1,000-item batch's results): encoded with orjson,
~10× the stdlib encoder on them. Only for bodies the product builds from checked data (no
NaN: orjson would write ``null`` where the stdlib refuses); what orjson cannot encode (an
integer past 64 bits, a lone surrogate) goes to Starlette's stdlib rendering, unchanged."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # orjson.JSONEncodeError
            return super().render(content)

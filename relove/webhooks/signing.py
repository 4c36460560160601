"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the
``standardwebhooks`` package itself, so what we send is what its receivers verify.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; during a
secret rotation it carries one signature per secret, separated by a space (the spec's form),
and a receiver accepts the message if any of them verifies.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
#: 32 random bytes: the HMAC key
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secrets_: Sequence[str], msg_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` per secret, newest first."""
    return " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets_)


def headers(secrets_: Sequence[str], msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers (and the JSON content type)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secrets_, msg_id, at, body),
    }

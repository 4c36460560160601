"""Files: sendPhoto, sendDocument, sendVideo, sendMediaGroup, getFile and the download route
``/file/bot<token>/<file_path>``.

A file is an upload (multipart, directly or as ``attach://<name>``), a ``file_id`` the sandbox
gave out before, or an http(s) URL (recorded, never fetched: the sandbox makes no outbound
requests for files).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from relove.sandbox.core import ApiError, Sandbox, bad_request
from relove.sandbox.outgoing import Outgoing, new_message
from relove.sandbox.params import MAX_UPLOAD, Params, lenient_int
from relove.sandbox.state import Message
from relove.sandbox.text import Parsed, finish, parse

PHOTO_LIMIT = 10 * 1024 * 1024
#: bots may download files up to this size (getFile)
DOWNLOAD_LIMIT = 20 * 1024 * 1024
ALBUM_KINDS = frozenset({"photo", "video", "document", "audio"})
#: these can only be grouped with their own kind
HOMOGENEOUS = {"document": "document", "audio": "audio"}


class FileRef:
    """A file named by a call, resolved once the chat is known (:meth:`record`)."""

    __slots__ = ("value", "upload")

    def __init__(self, value: str | None, upload: FileField | None) -> None:
        self.value = value
        self.upload = upload

    def record(self, sb: Sandbox, kind: str) -> dict[str, Any]:
        if self.upload is not None:
            data = self.upload.file.read(MAX_UPLOAD + 1)
            if len(data) > (PHOTO_LIMIT if kind == "photo" else MAX_UPLOAD):
                raise bad_request("file is too big")
            return sb.world.store_file(data, kind=kind, name=self.upload.filename,
                                       mime=self.upload.content_type)
        value = self.value or ""
        if value in sb.world.files:
            return sb.world.files[value]
        if value.startswith(("http://", "https://")):
            return sb.world.store_file(None, kind=kind, name=value.rsplit("/", 1)[-1] or None,
                                       mime=None, url=value)
        raise bad_request("wrong file identifier/HTTP URL specified")


def file_ref(p: Params, value: str | None, field: str | None = None) -> FileRef | None:
    """A file parameter as the official server reads it: an upload under ``field``, an
    ``attach://name`` upload, or a string (file_id / URL); None when there is none."""
    if value:
        if value.startswith("attach://"):
            upload = p.files.get(value[len("attach://"):])
            return FileRef(None, upload) if upload is not None else None
        return FileRef(value, None)
    if field is not None and field in p.files:
        return FileRef(None, p.files[field])
    return None


def _attach(message: Message, kind: str, record: dict[str, Any], options: dict[str, Any]
            ) -> None:
    base = {"file_id": record["file_id"], "file_unique_id": record["file_unique_id"],
            "file_size": record["size"]}
    if kind == "photo":
        message.photo = [{**base, "width": 512, "height": 512}]
    elif kind == "video":
        message.video = {**base, "width": _clamp(options.get("width"), 10000, 640),
                         "height": _clamp(options.get("height"), 10000, 360),
                         "duration": _clamp(options.get("duration"), 86400 * 365, 0),
                         "mime_type": record["mime"] or "video/mp4"}
        if record["name"]:
            message.video["file_name"] = record["name"]
    else:
        message.document = {**base, "file_name": record["name"] or "document",
                            "mime_type": record["mime"] or "application/octet-stream"}


def _clamp(value: Any, top: int, default: int) -> int:
    number = lenient_int(value)
    return min(max(number, 0), top) if number else default


def _caption(sb: Sandbox, message: Message, parsed: Parsed) -> None:
    caption, entities = finish(parsed, sb.world, kind="caption")
    message.caption, message.caption_entities = caption or None, entities or None
    message.source, message.parse_mode = (parsed.source or None), parsed.mode


async def _send_media(sb: Sandbox, p: Params, kind: str) -> Any:
    ref = file_ref(p, p.raw(kind), kind)
    if ref is None:
        raise bad_request(f"there is no {kind} in the request")
    parsed = parse(p.raw("caption"), p, "caption_entities")
    out = Outgoing.check(sb, p)
    record = ref.record(sb, kind)
    message = new_message(out.chat)
    _attach(message, kind, record, p.values)
    _caption(sb, message, parsed)
    return out.deliver(sb, message).to_telegram(sb.world)


async def send_photo(sb: Sandbox, p: Params) -> Any:
    return await _send_media(sb, p, "photo")


async def send_document(sb: Sandbox, p: Params) -> Any:
    return await _send_media(sb, p, "document")


async def send_video(sb: Sandbox, p: Params) -> Any:
    return await _send_media(sb, p, "video")


def _input_media(p: Params, item: Any) -> tuple[str, FileRef, Parsed, dict[str, Any]]:
    """One InputMedia of an album; ValueError with the official reason."""
    if not isinstance(item, dict):
        raise ValueError("expected an Object")
    fields = Params({k: v for k, v in item.items() if k in (
        "caption", "parse_mode", "caption_entities")})
    for name in ("caption", "parse_mode"):
        if name in item and not isinstance(item[name], (str, int, float)):
            raise ValueError(f'Field "{name}" must be of type String')
    try:
        parsed = parse(fields.raw("caption"), fields, "caption_entities")
    except ApiError as e:
        detail = e.description.removeprefix("Bad Request: ")
        raise ValueError(detail[:1].upper() + detail[1:]) from None
    if "type" not in item:
        raise ValueError('Can\'t find field "type"')
    kind = item["type"]
    if not isinstance(kind, str):
        raise ValueError('Field "type" must be of type String')
    media = item.get("media")
    ref = file_ref(p, media if isinstance(media, str) else None)
    if ref is None:
        raise ValueError("media not found")
    if kind == "animation":
        raise ValueError(f'type "{kind}" can\'t be used in sendMediaGroup')
    if kind not in ALBUM_KINDS:
        raise ValueError(f'type "{kind}" is unsupported')
    return kind, ref, parsed, item


async def send_media_group(sb: Sandbox, p: Params) -> Any:
    raw = p.raw("media")
    if not raw:
        raise bad_request('parameter "media" is required')
    items = p.json("media", "can't parse media JSON object")
    if not isinstance(items, list):
        raise bad_request("expected an Array of InputMedia")
    album = []
    for item in items:
        try:
            album.append(_input_media(p, item))
        except ValueError as e:
            raise bad_request(f"can't parse InputMedia: {e}") from None
    out = Outgoing.check(sb, p)
    if len(album) > 10:
        raise bad_request("too many messages to send as an album")
    if not album:
        raise bad_request("there are no messages to send")
    kinds = {kind for kind, *_ in album}
    for kind in kinds:
        if kind in HOMOGENEOUS and len(kinds) > 1:
            raise bad_request(f"{HOMOGENEOUS[kind]} can't be mixed with other media types")
    messages = []
    for kind, ref, parsed, options in album:
        message = new_message(out.chat)
        _attach(message, "document" if kind == "audio" else kind, ref.record(sb, kind), options)
        _caption(sb, message, parsed)
        messages.append(message)
    sb.take_slot(out.chat, out.paid)  # an album counts as one message toward the limits
    group_id = str(uuid.uuid4().int >> 65) if len(messages) > 1 else None
    for message in messages:
        message.media_group_id = group_id
        out.store(message)
        out.markup = None
    return [m.to_telegram(sb.world) for m in messages]


async def get_file(sb: Sandbox, p: Params) -> Any:
    file_id = p.raw("file_id")
    if not file_id:
        raise bad_request("file_id not specified")
    record = sb.world.files.get(file_id)
    if record is None:
        raise bad_request("invalid file_id")
    if record["size"] > DOWNLOAD_LIMIT:
        raise bad_request("file is too big")
    result = {"file_id": record["file_id"], "file_unique_id": record["file_unique_id"],
              "file_size": record["size"]}
    if record["data"] is not None:
        result["file_path"] = record["path"]
    return result


def file_response(record: dict[str, Any]) -> web.Response:
    """A stored file, never rendered by a browser as a page (attachment unless a raster image,
    and a CSP sandbox either way)."""
    mime = record["mime"] or "application/octet-stream"
    headers = {"X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox"}
    if not mime.startswith("image/") or "svg" in mime:
        mime = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    return web.Response(body=record["data"], content_type=mime, headers=headers)


def download_handler(sb: Sandbox) -> Any:
    """``GET /file/bot<token>/<file_path>``: the bytes of a file, as after getFile."""

    async def download(request: web.Request) -> web.StreamResponse:
        file_id = sb.world.file_paths.get(request.match_info["path"])
        record = sb.world.files.get(file_id or "")
        if record is None or record["data"] is None:
            return web.json_response({"ok": False, "error_code": 404,
                                      "description": "Not Found"}, status=404)
        return file_response(record)

    return download

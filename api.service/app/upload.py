"""Read the photo(s) out of a multipart/form-data body, or say precisely what is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.errors import (
    MALFORMED_MULTIPART,
    MISSING_FIELD,
    NOT_MULTIPART,
    TOO_MANY_FILES,
    TOO_MANY_IMAGES,
    UNEXPECTED_FILE,
)

FIELD = "image_to_predict"
BATCH_FIELD = "images"
# A well-formed upload has one part; a few extra are tolerated (and ignored) before giving up.
MAX_PARTS = 8
MAX_TEXT_FIELD_BYTES = 64 * 1024
# What the schema declares for text parts (JSON Schema counts characters): the most characters
# that always fit the byte cap in UTF-8. Enforced too, so the API accepts what it documents only.
MAX_TEXT_FIELD_CHARS = MAX_TEXT_FIELD_BYTES // 4

# The request body /docs shows (the handler reads the stream itself, see read_image_upload), with
# the limits the API enforces, so that schema-driven clients and fuzzers (schemathesis) know them:
# one file part of type JPEG or PNG, at most MAX_PARTS parts, text parts up to 64 KiB.
OPENAPI_REQUEST_BODY = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object", "required": [FIELD], "maxProperties": MAX_PARTS,
            "properties": {FIELD: {
                "type": "string", "format": "binary",
                "description": "the photo: one non-empty JPEG or PNG file (recognised by its "
                               "bytes), at most MAX_UPLOAD_BYTES (10 MiB) with the rest of the "
                               "body, at most MAX_IMAGE_PIXELS pixels, at least MIN_IMAGE_SIDE "
                               "pixels on its short side"}},
            # Other parts are ignored (a few are tolerated); they must be small text fields.
            "additionalProperties": {"type": "string", "maxLength": MAX_TEXT_FIELD_CHARS},
        },
        "encoding": {FIELD: {"contentType": "image/jpeg, image/png"}},
    }},
}


# The batch endpoint's request body, for /docs, with its limits declared the same way (at least one
# photo; 16 = MAX_BATCH_FILES' default; other parts small text fields).
OPENAPI_BATCH_REQUEST_BODY = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {
            "type": "object", "required": [BATCH_FIELD], "maxProperties": MAX_PARTS,
            "properties": {BATCH_FIELD: {
                "type": "array", "minItems": 1, "maxItems": 16,
                "items": {"type": "string", "format": "binary"},
                "description": "the photos (JPEG or PNG), one file part each, all named 'images'; "
                               "at most MAX_BATCH_FILES of them and MAX_BATCH_BYTES in all"}},
            "additionalProperties": {"type": "string", "maxLength": MAX_TEXT_FIELD_CHARS},
        },
        "encoding": {BATCH_FIELD: {"contentType": "image/jpeg, image/png"}},
    }},
}


async def _parse_form(request: Request, field: str, *, max_files: int) -> FormData:
    """The parsed multipart body (files spooled to disk past 1 MiB); shape errors as problems."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise NOT_MULTIPART.error(
            f"Send the photo as multipart/form-data in the field '{field}' "
            f"(got Content-Type {content_type.split(';')[0].strip() or 'none'}).")
    parser = MultiPartParser(request.headers, request.stream(), max_files=max_files,
                             max_fields=MAX_PARTS, max_part_size=MAX_TEXT_FIELD_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if field == BATCH_FIELD and error.message.startswith("Too many files"):
            raise TOO_MANY_IMAGES.error(
                f"The request holds more than {max_files} photos; send at most {max_files} "
                "per request.") from None
        raise MALFORMED_MULTIPART.error(
            f"The multipart body could not be parsed: {error.message}") from None
    for name, value in form.multi_items():
        if isinstance(value, str) and len(value) > MAX_TEXT_FIELD_CHARS:
            await form.close()
            raise MALFORMED_MULTIPART.error(
                f"The text part '{name[:64]}' is longer than {MAX_TEXT_FIELD_CHARS} characters; "
                "text parts are ignored, send the photo(s) only.")
    return form


async def read_image_upload(request: Request) -> bytes:
    """The bytes of the single file in the `image_to_predict` field."""
    form = await _parse_form(request, FIELD, max_files=MAX_PARTS)
    try:
        files = [name for name, value in form.multi_items() if isinstance(value, UploadFile)]
        if len(files) > 1:
            raise TOO_MANY_FILES.error(
                f"The request holds {len(files)} files ({', '.join(files)}); send exactly one "
                f"photo in '{FIELD}'.")
        upload = form.get(FIELD)
        if upload is None:
            got = f" (got: {', '.join(dict.fromkeys(form.keys()))})" if form else ""
            raise MISSING_FIELD.error(f"No file in the multipart field '{FIELD}'{got}.")
        if not isinstance(upload, UploadFile):
            raise MISSING_FIELD.error(
                f"'{FIELD}' is a text field; send the photo as a file part (with a filename).")
        return await upload.read()
    finally:
        await form.close()


async def read_image_uploads(request: Request) -> AsyncIterator[list[UploadFile | str]]:
    """The parts of the `images` field, in request order: files, and text parts (each answered
    as a problem in its place); closed after the request."""
    max_files = request.app.state.settings.MAX_BATCH_FILES
    form = await _parse_form(request, BATCH_FIELD, max_files=max_files)
    try:
        elsewhere = [name for name, value in form.multi_items()
                     if isinstance(value, UploadFile) and name != BATCH_FIELD]
        if elsewhere:
            raise UNEXPECTED_FILE.error(
                f"The request holds files outside the field '{BATCH_FIELD}' "
                f"({', '.join(dict.fromkeys(elsewhere))}); send every photo in '{BATCH_FIELD}'.")
        parts = form.getlist(BATCH_FIELD)
        if not any(isinstance(value, UploadFile) for value in parts):
            got = f" (got: {', '.join(dict.fromkeys(form.keys()))})" if form else ""
            raise MISSING_FIELD.error(
                f"No file in the multipart field '{BATCH_FIELD}'{got}; send one file part per "
                "photo, each named 'images'.")
        yield parts
    finally:
        await form.close()

"""Read the one photo out of a multipart/form-data body, or say precisely what is wrong."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.errors import MALFORMED_MULTIPART, MISSING_FIELD, NOT_MULTIPART, TOO_MANY_FILES

FIELD = "image_to_predict"
# A well-formed upload has one part; a few extra are tolerated (and ignored) before giving up.
MAX_PARTS = 8
MAX_TEXT_FIELD_BYTES = 64 * 1024

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
            "additionalProperties": {"type": "string", "maxLength": MAX_TEXT_FIELD_BYTES // 4},
        },
        "encoding": {FIELD: {"contentType": "image/jpeg, image/png"}},
    }},
}


async def read_image_upload(request: Request) -> bytes:
    """The bytes of the single file in the `image_to_predict` field."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise NOT_MULTIPART.error(
            f"Send the photo as multipart/form-data in the field '{FIELD}' "
            f"(got Content-Type {content_type.split(';')[0].strip() or 'none'}).")
    parser = MultiPartParser(request.headers, request.stream(), max_files=MAX_PARTS,
                             max_fields=MAX_PARTS, max_part_size=MAX_TEXT_FIELD_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise MALFORMED_MULTIPART.error(
            f"The multipart body could not be parsed: {error.message}") from None
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

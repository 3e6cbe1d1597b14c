"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.api_service.schemathesis_hooks): real photos for
the upload's JPEG/PNG parts, so its positive-data check sends what the API must accept, and the
batch endpoint's photos as an array of file parts.

Loaded by the `st` CLI in its own process, not collected by pytest."""

from __future__ import annotations

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image

from tests.support.paths import leaf_photos

_PHOTOS = [Image.open(path).convert("RGB") for path in leaf_photos()]


def _encoded(fmt: str) -> st.SearchStrategy[bytes]:
    @st.composite
    def photo(draw: st.DrawFn) -> bytes:
        image = draw(st.sampled_from(_PHOTOS))
        # Small enough that 16 of them (a full batch) stay under MAX_BATCH_BYTES as PNGs too.
        long_side = draw(st.integers(min_value=64, max_value=512))
        image = image.resize((long_side, long_side * 3 // 4))
        buffer = io.BytesIO()
        if fmt == "JPEG":
            image.save(buffer, fmt, quality=draw(st.integers(min_value=30, max_value=95)))
        else:
            image.save(buffer, fmt)
        return buffer.getvalue()

    return photo()


schemathesis.openapi.media_type("image/jpeg", _encoded("JPEG"))
schemathesis.openapi.media_type("image/png", _encoded("PNG"))


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: object) -> object:
    """The batch endpoint's `images` is an array of file parts, and its `encoding` contentType
    (JPEG or PNG) applies to each part (OpenAPI 3.1, "Encoding Object"). schemathesis 4.32.5 draws
    the registered photo strategy for the whole property instead, i.e. ONE photo where the
    schema says an array, and then sends it without a filename: a plain form field, which the
    API rightly refuses as "no file". One photo becomes a batch of one here."""
    # A form body with per-property content types comes wrapped (its dict is `.body`).
    fields = getattr(body, "body", body)
    if (getattr(context.operation, "path", None) == "/v1/predict/images"
            and isinstance(fields, dict) and isinstance(fields.get("images"), bytes)):
        fields["images"] = [fields["images"]]
    return body

"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.api_service.schemathesis_hooks): real photos for
the upload's JPEG/PNG parts, so its positive-data check sends what the API must accept.

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

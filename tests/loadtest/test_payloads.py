"""loadtest.payloads: the mix is mostly real photos, a fifth bad input, each with its answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.payloads import API_HOST, UI_HOST, Payload, build_mix


@pytest.fixture(scope="module")
def mix(leaf_photo_paths: list[Path]) -> list[Payload]:
    return build_mix(leaf_photo_paths, large=False)


def test_the_mix_has_phone_page_and_bad_uploads(mix: list[Payload]):
    total = sum(p.weight for p in mix)
    bad = [p for p in mix if p.name.startswith("bad-")]
    assert 0.15 < sum(p.weight for p in bad) / total < 0.25
    assert all(200 not in p.expected for p in bad)
    assert {p.host for p in mix} == {API_HOST, UI_HOST}
    assert all(p.path == "/api/predict/image" for p in mix if p.host == UI_HOST)
    sizes = {p.name.rsplit("-", 1)[0] for p in mix if p.expected == {200}}
    assert sizes == {"phone-800x600", "page-512", "phone-1600x1200"}
    assert all(p.body.endswith(b"--\r\n") and b'name="image_to_predict"' in p.body for p in mix)


@pytest.mark.slow
def test_large_adds_12_mp_phone_photos(leaf_photo_paths: list[Path]):
    large = [p for p in build_mix(leaf_photo_paths) if "4000x3000" in p.name]
    assert len(large) == len(leaf_photo_paths)
    assert all(len(p.body) > 1_000_000 for p in large)

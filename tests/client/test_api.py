"""The HTTP client's decisions, against httpx's in-memory transport (no server): where it
connects, what it retries, how long it waits, what it tells the user. The same behaviour
against the real stack and a real Traefik rate limit: test_cli.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cassava_survey.api import ApiError, SurveyClient, describe_answer, is_loopback_name
from cassava_survey.photos import Photo

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("api.service.localhost", True), ("API.Service.LocalHost.", True),
    ("localhost.example.org", False), ("mylocalhost", False), ("127.0.0.1", False)])
def test_localhost_names(host: str, loopback: bool) -> None:
    assert is_loopback_name(host) is loopback


def ok(count: int) -> httpx.Response:
    return httpx.Response(200, json={"results": [{"prediction": {"code": "CMD"}}] * count,
                                     "request_id": "r"})


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": PROBLEM, **headers},
                          json={"type": f"tag:x:{code}", "title": code.title(), "status": status,
                                "detail": f"detail of {code}", "code": code})


def run(tmp_path: Path, answers: Callable[[httpx.Request], httpx.Response], count: int = 2,
        api: str = "http://api.service.localhost:8080", retries: int = 3
        ) -> tuple[list[dict], list[httpx.Request], list[float]]:
    photos = []
    for index in range(count):
        (tmp_path / f"{index}.jpg").write_bytes(b"\xff\xd8\xff" + bytes([index]) * 10)
        photos.append(Photo(tmp_path / f"{index}.jpg", 13, 0))
    requests: list[httpx.Request] = []
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answers(request)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> list[dict]:
        client = SurveyClient(api, retries=retries, sleep=sleep, jitter=lambda: 0.0,
                              transport=httpx.MockTransport(handler))
        try:
            return await client.diagnose(photos)
        finally:
            await client.aclose()

    return asyncio.run(go()), requests, waits


def test_localhost_api_connects_to_loopback_with_the_host_as_typed(tmp_path: Path) -> None:
    results, (request,), _ = run(tmp_path, lambda request: ok(2))
    assert len(results) == 2
    assert str(request.url) == "http://127.0.0.1:8080/v1/predict/images"
    assert request.headers["host"] == "api.service.localhost:8080"
    assert request.extensions["sni_hostname"] == "api.service.localhost"
    assert request.content.count(b'name="images"') == 2


def test_other_hosts_are_left_alone(tmp_path: Path) -> None:
    _, (request,), _ = run(tmp_path, lambda request: ok(2), api="http://10.1.2.3/cassava/")
    assert str(request.url) == "http://10.1.2.3/cassava/v1/predict/images"


def test_429_and_503_are_retried_honouring_retry_after(tmp_path: Path) -> None:
    answers = iter([problem(429, "rate_limited", **{"Retry-After": "3"}),
                    problem(503, "model_unavailable"), ok(2)])
    results, requests, waits = run(tmp_path, lambda request: next(answers))
    assert len(results) == 2 and len(requests) == 3
    assert waits == [3.0, 1.0]  # the server's Retry-After, then backoff (2nd attempt, no jitter)


# What is retried is seen in behaviour (429 and 503 above, 502 and 504 here; the rest below).
@pytest.mark.parametrize("status", [502, 504])
def test_retries_run_out_with_a_clear_error(tmp_path: Path, status: int) -> None:
    with pytest.raises(ApiError,
                       match=rf"HTTP {status} .*upstream_timeout.*gave up after 2 retries"):
        run(tmp_path, lambda request: problem(status, "upstream_timeout"), retries=2)


def test_an_unreachable_server_is_retried_then_named(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(ApiError, match=r"cannot connect to http://api.service.localhost:8080"):
        run(tmp_path, refuse, retries=1)


@pytest.mark.parametrize("status", [400, 404, 415, 422, 500])
def test_answers_that_will_not_change_stop_at_once(tmp_path: Path, status: int) -> None:
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(status)
        return problem(status, "some_code")

    with pytest.raises(ApiError, match=rf"refused the request: HTTP {status} Some_Code: "
                                       r"detail of some_code \[some_code\]"):
        run(tmp_path, answer)
    assert seen == [status]


def test_a_batch_too_large_is_split_and_a_single_photo_too_large_is_its_own_result(
        tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        files = request.content.count(b'name="images"')
        if b'filename="2.jpg"' in request.content or files > 2:
            return problem(413, "body_too_large")
        return ok(files)

    results, requests, _ = run(tmp_path, answer, count=4)
    assert [("problem" in result) for result in results] == [False, False, True, False]
    assert results[2]["problem"]["code"] == "body_too_large"
    assert len(requests) == 1 + 1 + 1 + 2  # 4 -> [0, 1] ok, [2, 3] -> [2] alone, [3] alone


def test_a_200_that_is_not_a_batch_answer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ApiError, match="is --api the cassava API"):
        run(tmp_path, lambda request: httpx.Response(200, text="<html>welcome</html>"))


@pytest.mark.parametrize("results", [
    [None, None],
    [{"prediction": 5}, {"prediction": {"code": "CMD"}}],
    [{"prediction": {"code": "CMD", "model": "cassava"}}, {"prediction": {"code": "CMD"}}],
    [{"prediction": {"code": "CMD", "confidence": "high"}}, {"prediction": {"code": "CMD"}}],
    [{"problem": "broken"}, {"prediction": {"code": "CMD"}}],
    [{"problem": {"code": ["x"]}}, {"prediction": {"code": "CMD"}}],
    [{}, {"prediction": {"code": "CMD"}}],
    ["text", 7],
], ids=["nulls", "number", "model-text", "confidence-text", "problem-text", "code-list",
        "empty", "scalars"])
def test_a_malformed_result_is_one_clear_error(tmp_path: Path, results: list) -> None:
    # Issue 20: {"results": [null, null]} gave a traceback and no output.
    answer = httpx.Response(200, json={"results": results, "request_id": "r"})
    with pytest.raises(ApiError, match=r"answered a malformed result for photo \d of 2"):
        run(tmp_path, lambda request: answer)


def test_plain_text_errors_are_described_too() -> None:
    reply = httpx.Response(429, text="Too Many Requests\n")
    assert describe_answer(reply) == "HTTP 429 Too Many Requests: Too Many Requests"


NGINX_405 = ("<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n<center><h1>405 "
             "Not Allowed</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@pytest.mark.parametrize("content_type", ["text/html", None])
def test_a_web_page_instead_of_the_api_is_one_clear_line(content_type: str | None) -> None:
    # What nginx (the page's host) answers a POST: the line names the likely mistake, no HTML.
    headers = {"Content-Type": content_type} if content_type else {}
    described = describe_answer(httpx.Response(405, text=NGINX_405, headers=headers))
    assert described.startswith("HTTP 405 Method Not Allowed: a web page answered")
    assert "api.service.localhost" in described
    assert "<" not in described and "\n" not in described

"""The platform client honours the trip service's load shedding: a booking refused with 503 and
Retry-After (nothing was booked) is sent again after that delay; any other answer is final."""

from __future__ import annotations

import httpx
import pytest

from fleet.platform.client import ApiError, Platform, User

RIDER = User("r-1", {"Authorization": "Bearer t"})
SHED = httpx.Response(
    503,
    headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
    json={"type": "https://fleet.dev/problems/overloaded", "status": 503},
)


def platform(answers: list[httpx.Response]) -> tuple[Platform, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://fleet")
    return Platform(http), sent


async def test_a_shed_booking_is_sent_again_after_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("fleet.platform.client.asyncio.sleep", sleep)
    api, sent = platform([SHED, SHED, httpx.Response(202, json={"id": "t-1"})])

    trip = await api.book(RIDER, key="k-1")

    assert trip == {"id": "t-1"}
    assert waits == [1.0, 1.0]
    assert [r.headers["Idempotency-Key"] for r in sent] == ["k-1"] * 3


async def test_a_503_without_retry_after_is_an_error_at_once() -> None:
    api, sent = platform([httpx.Response(503, json={"status": 503})])

    with pytest.raises(ApiError, match="503"):
        await api.book(RIDER)

    assert len(sent) == 1


async def test_shedding_longer_than_within_gives_up_with_the_503() -> None:
    api, sent = platform([SHED])

    with pytest.raises(ApiError, match="503"):
        await api.book(RIDER, within=0.5)

    assert len(sent) == 1

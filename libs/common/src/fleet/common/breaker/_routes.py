"""`GET /breakers`: every circuit breaker of this app, for operators."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from fleet.common.auth import OperatorPrincipal
from fleet.common.breaker._breaker import AsyncCircuitBreaker
from fleet.common.breaker._registry import BreakerRegistry

router = APIRouter(tags=["ops"])


class BreakerOut(BaseModel):
    name: str
    state: str = Field(description="closed, open or half-open")
    failure_rate: float = Field(description="failures / calls over the rolling window")
    calls: int = Field(description="calls in the rolling window")
    failures: int = Field(description="failed calls in the rolling window")
    opened_at: dt.datetime | None = Field(description="when the circuit last opened")
    window_seconds: float
    min_calls: int
    failure_threshold: float
    reset_timeout: float
    timeout: float
    shared: bool = Field(description="state shared with the other replicas through Redis")

    @classmethod
    def of(cls, b: AsyncCircuitBreaker) -> BreakerOut:
        calls, failures = b.window.counts()
        return cls(
            name=b.name,
            state=b.state,
            failure_rate=round(failures / calls, 4) if calls else 0.0,
            calls=calls,
            failures=failures,
            opened_at=b.opened_at,
            window_seconds=b.config.window_seconds,
            min_calls=b.config.min_calls,
            failure_threshold=b.config.failure_threshold,
            reset_timeout=b.config.reset_timeout,
            timeout=b.config.timeout,
            shared=b.shared is not None,
        )


@router.get("/breakers", summary="Circuit breakers of this service: state, error rate, counts")
async def list_breakers(request: Request, _op: OperatorPrincipal) -> list[BreakerOut]:
    breakers: BreakerRegistry = request.app.state.fleet.breakers
    for breaker in breakers:
        await breaker.refresh()
    return [BreakerOut.of(b) for b in breakers]

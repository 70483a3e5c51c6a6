"""Translation of trip domain errors into the platform's problem documents."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fleet.common.errors import ConflictError, InvalidInputError
from fleet.trip.domain.trips import InvalidTransition, InvalidTripData, StaleTrip


@contextmanager
def domain_errors() -> Iterator[None]:
    """Run a use case step; a refused transition or a lost race becomes 409, bad data 422."""
    try:
        yield
    except InvalidTransition as exc:
        raise ConflictError(
            str(exc), status_now=exc.current.value, requested=exc.target.value
        ) from exc
    except StaleTrip as exc:
        raise ConflictError(str(exc)) from exc
    except InvalidTripData as exc:
        raise InvalidInputError(str(exc), field=exc.field) from exc

"""Published message schemas: what services may say to each other, and nothing else.

Services share no code but `fleet.common`, these schemas and the pricing rule (`fares`, which
billing invoices with and trip quotes with). Every class is registered in
`fleet.common.messaging.default_registry` on import, keyed by its routing key and version.
Events are facts (past tense, `trip.completed`); commands are requests inside the booking saga
(imperative, `user.reserve-credits`) whose payload is the saga's data.
"""

from fleet.contracts import booking, events, fares, producers, queues

__all__ = ["booking", "events", "fares", "producers", "queues"]

"""The operations console: server-rendered pages for operators at `/console`.

It reads and acts on the platform only through the public REST API, as the signed-in operator
(docs/console.md). `console_app(LocalTransport(app))` serves it for an app in this process.
"""

from fleet.platform.console._api import ApiError, PlatformApi
from fleet.platform.console._app import LocalTransport, console_app
from fleet.platform.console._security import console_secret

__all__ = ["ApiError", "LocalTransport", "PlatformApi", "console_app", "console_secret"]

"""ASGI middleware of our own."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RateLimitHeaders:
    """ASGI middleware: adds the RateLimit-* headers that auth left in the request's state (errors
    included: a 404 or a 429 tells the client where it stands too). Plain ASGI, so it costs next to nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                verdict = scope.get("state", {}).get("ratelimit")
                if verdict is not None:
                    message["headers"] = [*message.get("headers", []), *verdict.headers()]
            await send(message)

        await self.app(scope, receive, send_with_headers)

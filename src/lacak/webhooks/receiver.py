"""A development receiver: `lacak webhooks receive` prints each delivery it verifies.

For trying webhooks on one machine (with `LACAK_WEBHOOK_ALLOW_PRIVATE=1`), like a payment
provider's "listen" command. It verifies every request with the `standardwebhooks` package,
as a merchant's own receiver would, and answers 401 to anything that does not verify.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def app(secret: str | None, emit: Callable[[str], None]) -> web.Application:
    verifier = Webhook(secret) if secret else None

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        verdict = "unverified (no --secret)"
        if verifier is not None:
            try:
                verifier.verify(body, headers)
            except WebhookVerificationError as exc:
                emit(f"REJECTED {headers.get('webhook-id', '?')}: {exc}")
                return web.Response(status=401, text="signature does not verify\n")
            verdict = "verified"
        emit(f"{headers.get('webhook-id', '?')} {verdict}\n{body.decode('utf-8', 'replace')}")
        return web.Response(text="ok\n")

    application = web.Application(client_max_size=1024**2)
    application.router.add_post("/{tail:.*}", receive)
    return application


def serve(host: str, port: int, secret: str | None, emit: Callable[[str], None]) -> None:
    emit(f"listening on http://{host}:{port}/ (any path); Ctrl-C stops")
    web.run_app(app(secret, emit), host=host, port=port, print=None)

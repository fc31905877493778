"""Routes: the simulator's driver photos, `GET /avatars/{seed}.svg` (public, no key)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lacak.couriers.simulator.avatar import svg
from lacak.http.envelope import fail

_SEED = re.compile(r"[A-Za-z0-9_-]{1,64}")
CACHE = "public, max-age=86400"  # a seed's picture never changes


async def avatar(request: Request) -> Response:
    seed = request.path_params["seed"]
    if not _SEED.fullmatch(seed):
        return fail("avatar not found", 404, status=404)
    return Response(svg(seed), media_type="image/svg+xml", headers={"Cache-Control": CACHE})


def routes() -> list[Route]:
    return [Route("/avatars/{seed}.svg", avatar, methods=["GET"])]

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx

Started = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def sign_in(client: httpx.AsyncClient, user: str = "demo-user") -> None:
    answer = await client.post("/login", data={"user_id": user, "next": "/go-pay/restaurants"})
    assert answer.status_code == 303, answer.text


@asynccontextmanager
async def signed_in(start_proxy: Started, config: Any) -> AsyncIterator[httpx.AsyncClient]:
    """api-proxy started with ``config``, its client signed in as the demo guest."""
    async with start_proxy(config) as proxy:
        await sign_in(proxy)
        yield proxy

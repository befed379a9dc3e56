from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

Started = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def sign_in(client: httpx.AsyncClient, user: str = "demo-user") -> None:
    answer = await client.post("/login", data={"user_id": user, "next": "/go-pay/restaurants"})
    assert answer.status_code == 303, answer.text

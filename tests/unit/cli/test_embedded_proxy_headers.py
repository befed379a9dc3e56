"""`qrpay up` leaves forwarded headers to kernel.edge: uvicorn's own would trust 127.0.0.1."""

from __future__ import annotations

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from qrpay.runner.embedded import server_config


def test_uvicorn_does_not_rewrite_the_client_or_scheme() -> None:
    config = server_config(FastAPI(), "127.0.0.1", 0)
    config.load()
    app = config.loaded_app
    wrapped = []
    while app is not None:
        wrapped.append(type(app))
        app = getattr(app, "app", None)
    assert ProxyHeadersMiddleware not in wrapped

"""The fuzz tier (issue 11): any input to a public route is never a 5xx, and a request that
is refused creates nothing.

The three front doors: iiko-integration (the POS API and the app API), payments-eda (the
payer API) and api-proxy (the browser's edge, with the real payments-eda behind it).
Behind them the permissive fakes of ``tests.support.fuzz`` count every write, so a refused
answer (4xx) after which anything was written downstream fails the test.

Schemathesis generates valid and invalid requests from each OpenAPI document; hypothesis
adds what a schema does not say: any text as the order id, and signatures of a real
signature's length in any characters (a non-ASCII one used to be a 500). Derandomized
and bounded: the same cases on every run, a few seconds in all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from qrpay.api_proxy.domain import SESSION_COOKIE, new_session, sign_session
from qrpay.kernel.clock import FrozenClock
from qrpay.kernel.queue import TaskQueue
from qrpay.runner.config import QrpayConfig
from qrpay.runner.context import build_app
from tests.support.component.iiko_integration import HEADERS
from tests.support.component.payments_eda import pay_body, signature
from tests.support.fuzz import (
    BILL,
    Fakes,
    background_loop,
    lazy_schema,
    running_fakes,
    schema_settings,
    sign_payer_case,
)
from tests.support.services import (
    dev_config,
    dev_secdist,
    make_context,
    point_services_at,
    running_service,
    served,
)

FUZZ = settings(schema_settings(25), derandomize=True, database=None)
PAYER = "/4.0/payments/v1"


@dataclass
class Downstreams:
    fakes: Fakes
    config: QrpayConfig  # every service's downstreams pointed at the fakes
    payments_url: str  # a real payments-eda in front of the fakes


@pytest.fixture(scope="module")
def downstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Downstreams]:
    with background_loop() as background, running_fakes(background) as fakes:
        config = point_services_at(
            dev_config(),
            fakes.base_url,
            "eda",
            "cardstorage",
            "transactions",
            "cashback",
            "iiko-integration",
            retries=0,
        )
        queue = TaskQueue()
        ctx = make_context(
            "payments-eda", tmp_path_factory.mktemp("payments"), config=config, queue=queue
        )
        stack = AsyncExitStack()

        async def start() -> str:
            app, _client = await stack.enter_async_context(running_service(ctx))
            return await stack.enter_async_context(served(app))

        payments_url = background.run(start())
        try:
            yield Downstreams(fakes, config, payments_url)
        finally:
            background.run(stack.aclose())
            background.run(queue.close())


def app_of(service: str, config: QrpayConfig, tmp_path: Path) -> FastAPI:
    return build_app(make_context(service, tmp_path, config=config, queue=TaskQueue()))


def proxy_config(downstreams: Downstreams) -> QrpayConfig:
    return point_services_at(downstreams.config, downstreams.payments_url, "payments-eda")


def session_cookie() -> str:
    secrets = dev_secdist().session_secrets
    assert secrets
    secret = secrets[0]  # the first signs
    session = new_session("demo-user", "phone-fuzz", FrozenClock().now())
    return sign_session(secret.get_secret_value(), session)


def call_and_check(case: Any, fakes: Fakes, **kwargs: Any) -> None:
    writes = fakes.writes()
    response = case.call(**kwargs)
    assert response.status_code < 500, (case.method, case.path, response.text)
    if response.status_code >= 400:
        assert fakes.writes() == writes, (case.method, case.path, response.status_code)


# --- iiko-integration: the POS API and the app API -------------------------------------------


@pytest.fixture
def iiko_schema(downstreams: Downstreams, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    return lazy_schema(request, app_of("iiko-integration", downstreams.config, tmp_path))


@schemathesis.pytest.from_fixture("iiko_schema").parametrize()
@FUZZ
def test_pos_and_app_api(case: Any, downstreams: Downstreams) -> None:
    call_and_check(case, downstreams.fakes, headers=HEADERS)


# --- payments-eda: the payer API -------------------------------------------------------------


@pytest.fixture
def payments_schema(
    downstreams: Downstreams, tmp_path: Path, request: pytest.FixtureRequest
) -> Any:
    return lazy_schema(request, app_of("payments-eda", downstreams.config, tmp_path))


@schemathesis.pytest.from_fixture("payments_schema").parametrize()
@FUZZ
def test_payer_api(case: Any, downstreams: Downstreams) -> None:
    sign_payer_case(case)
    call_and_check(case, downstreams.fakes)


# --- api-proxy: the browser's edge, the real payments-eda behind it ---------------------------


@pytest.fixture
def proxy_schema(downstreams: Downstreams, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    return lazy_schema(request, app_of("api-proxy", proxy_config(downstreams), tmp_path))


@schemathesis.pytest.from_fixture("proxy_schema").parametrize()
@FUZZ
def test_browser_edge(case: Any, downstreams: Downstreams) -> None:
    sign_payer_case(case)
    call_and_check(case, downstreams.fakes, cookies={SESSION_COOKIE: session_cookie()})


@pytest.fixture(scope="module")
def proxy(downstreams: Downstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = app_of("api-proxy", proxy_config(downstreams), tmp_path_factory.mktemp("proxy"))
    with TestClient(app, cookies={SESSION_COOKIE: session_cookie()}) as client:
        yield client


# Order ids: any text, and (every fake order exists) real-looking ones. Signatures: the
# right one, or 64 characters of anything, or any text.
ORDER_IDS = st.text(max_size=70) | st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
FORGED = st.text(min_size=64, max_size=64) | st.text(max_size=80)


@given(order_id=ORDER_IDS, forged=FORGED, route=st.sampled_from(["preorder", "orders", "pay"]))
@FUZZ
def test_any_order_id_and_signature_through_the_edge(
    proxy: Any, downstreams: Downstreams, order_id: str, forged: str, route: str
) -> None:
    """Only the order's own signature opens it; anything else is a 4xx, never a 5xx."""
    writes = downstreams.fakes.writes()
    if route == "pay":
        body = pay_body(order_id=order_id, hmac=forged, amount=BILL)
        answer: httpx.Response = proxy.post(f"{PAYER}/orders", json=body)
    else:
        params = {"order_id": order_id, "hmac": forged}
        if route == "preorder":
            params["service"] = "restaurant"
        answer = proxy.get(f"{PAYER}/{route}", params=params)
    assert answer.status_code < 500, answer.text
    if forged != signature(order_id):
        assert answer.status_code in (400, 404), answer.text
        assert downstreams.fakes.writes() == writes

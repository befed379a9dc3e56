"""cardstorage's HTTP routes: parse, call the service, serialize. Paths match ``cardstorage.client``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from qrpay.cardstorage.domain import PaymentMethod
from qrpay.cardstorage.schemas import (
    PaymentMethodIn,
    PaymentMethodInternal,
    PaymentMethodPublic,
    PaymentMethodsResponse,
)
from qrpay.cardstorage.service import PaymentMethodService
from qrpay.kernel.callers import allow
from qrpay.kernel.http import error_responses, view
from qrpay.kernel.service import provide

router = APIRouter(prefix="/v1/payment-methods", tags=["payment-methods"])

UserIdQuery = Annotated[str, Query(min_length=1, max_length=128)]
MethodIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


PaymentMethods = Annotated[PaymentMethodService, Depends(provide(PaymentMethodService))]


def public_view(method: PaymentMethod, service: PaymentMethodService) -> PaymentMethodPublic:
    now = service.clock.now()
    return view(PaymentMethodPublic, method, available=method.usable(now))


def internal_view(method: PaymentMethod, service: PaymentMethodService) -> PaymentMethodInternal:
    public = public_view(method, service)
    return PaymentMethodInternal(**public.model_dump(), user_id=method.user_id, token=method.token)


@router.put(
    "/{method_id}",
    summary="Bind a payment method to a user, or replace it (ids are global)",
    responses=error_responses(401, 403, 409),
    # No service binds cards yet: only `qrpay up`'s demo cards, as the tools.
    dependencies=[allow(tools=True)],
)
async def bind_payment_method(
    method_id: MethodIdPath, body: PaymentMethodIn, service: PaymentMethods
) -> PaymentMethodPublic:
    return public_view(await service.bind(method_id, body), service)


@router.get(
    "",
    summary="A user's payment methods, as the guest sees them",
    responses=error_responses(401, 403),
    dependencies=[allow("payments-eda")],
)
async def list_payment_methods(
    user_id: UserIdQuery, service: PaymentMethods
) -> PaymentMethodsResponse:
    methods = await service.list_for_user(user_id)
    return PaymentMethodsResponse(payment_methods=[public_view(m, service) for m in methods])


@router.get(
    "/{method_id}",
    summary="One of a user's payment methods with its gateway token",
    responses=error_responses(401, 403, 404),
    # The gateway token: to the service that pays with it, nobody else.
    dependencies=[allow("payments-eda")],
)
async def get_payment_method(
    method_id: str, user_id: UserIdQuery, service: PaymentMethods
) -> PaymentMethodInternal:
    method = await service.get_for_user(user_id, method_id)
    return internal_view(method, service)

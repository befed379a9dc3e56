"""The baseline: a bare FastAPI JSON endpoint, served the same way as the services."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class ListRequest(BaseModel):
    client_id: str
    orders: list[str]


@app.post("/orders/list")
async def orders_list(body: ListRequest) -> dict[str, list[dict[str, str]]]:
    return {"orders": [{"id": order_id, "status": "WAITING"} for order_id in body.orders]}


@app.post("/orders")
async def orders(body: dict[str, object]) -> dict[str, object]:
    return {"order_id": "x", "bill_lines": []}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}

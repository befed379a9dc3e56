"""Requests meeting a database that is down get a clean 503 ``database_unavailable``, not a 500."""

from pathlib import Path

from tests.support.component.eda import create_body
from tests.support.services import dev_secdist, make_context, running_service

# Nothing listens on port 1: every connection is refused at once.
DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/eda"


async def test_requests_on_a_dead_database_answer_503(tmp_path: Path) -> None:
    ctx = make_context("eda", tmp_path, secdist=dev_secdist(databases={"eda": DEAD_DATABASE}))
    async with running_service(ctx, migrate=False) as (_app, client):
        answers = [
            await client.post("/v1/orders", json=create_body()),  # a write transaction
            await client.get("/v1/orders/0123456789abcdef0123456789abcdef"),  # the asyncpg path
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "database_unavailable"

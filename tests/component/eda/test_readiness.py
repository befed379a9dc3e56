"""eda starts with its database down, reports not ready, and is ready once it is back."""

from pathlib import Path

from qrpay.kernel.db import Database
from qrpay.kernel.migrations import upgrade
from tests.support.services import dev_secdist, make_context, running_service

# Nothing listens on port 1: every connection is refused at once.
DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/eda"


async def test_ready_follows_the_database(tmp_path: Path) -> None:
    ctx = make_context("eda", tmp_path, secdist=dev_secdist(databases={"eda": DEAD_DATABASE}))
    async with running_service(ctx, migrate=False) as (app, client):
        assert (await client.get("/ping")).status_code == 200
        down = await client.get("/ready")
        assert down.status_code == 503
        assert down.json()["code"] == "database_unavailable"

        # The database comes back (here: the app's pool is re-pointed at a live one).
        live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
        upgrade("eda", live_url)
        dead = app.state.db
        app.state.db = Database(live_url)
        await dead.dispose()
        up = await client.get("/ready")
        assert up.status_code == 200, up.text
        assert up.json()["status"] == "ready"
        await app.state.db.dispose()

"""A config reload changes the rollout and the restaurants without a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from qrpay.iiko_integration.app import SERVICE
from qrpay.kernel.service import ServiceContext
from qrpay.kernel.settings import REPO_DEV_CONFIG, Settings
from qrpay.runner.config import runtime_from_files

PARAMS = {"nearest_zone": "kazan", "uuid": "u-1", "phone_id": "p-1"}


async def test_reloaded_config_is_used(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    data = yaml.safe_load((REPO_DEV_CONFIG / "config.yaml").read_text())
    config_path.write_text(yaml.safe_dump(data))
    runtime = runtime_from_files(config_path, REPO_DEV_CONFIG / "secdist.yaml")
    ctx = ServiceContext(
        name="iiko-integration", settings=Settings(data_dir=tmp_path), runtime=runtime
    )
    app = SERVICE.build(ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/availability", params=PARAMS)).json() == {"is_available": False}

        data["restaurants"].append(
            {"client_id": "rest-k", "name": "Kazan", "zone": "kazan", "cashback_rate": "5"}
        )
        targeting = data["experiments"]["flags"]["go_pay_enabled"]["targeting"]["if"]
        targeting[2] = {"in": [{"var": "nearest_zone"}, ["moscow", "kazan"]]}
        config_path.write_text(yaml.safe_dump(data, allow_unicode=True) + "\n# v2\n")
        assert runtime.check_now()

        assert (await client.get("/availability", params=PARAMS)).json() == {"is_available": True}
        listed = (await client.get("/restaurants", params=PARAMS)).json()["restaurants"]
        assert [(r["id"], r["cashback"]) for r in listed] == [("rest-k", "5%")]

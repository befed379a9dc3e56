"""The import string uvicorn's workers load: ``qrpay.runner.factory:create_app`` (factory=True).

Each worker process builds its app from the environment, since uvicorn cannot
pass arguments to a factory across processes.
"""

from __future__ import annotations

import gc
import os

from fastapi import FastAPI

from qrpay.kernel.logging import configure_logging
from qrpay.kernel.settings import Settings
from qrpay.runner.context import build_service_app, durable_queue, make_context

SERVICE_ENV = "QRPAY_SERVICE"


def create_app() -> FastAPI:
    service = os.environ.get(SERVICE_ENV)
    if not service:
        raise RuntimeError(f"{SERVICE_ENV} is not set: which service should this process run?")
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    # Production: every instance runs its jobs; the jobs are safe to run on several instances.
    # Queue consumers run apart, as `qrpay worker NAME`; the app only puts tasks.
    ctx = make_context(service, settings, background_jobs=True, queue_workers=False)
    ctx.queue = durable_queue(ctx)
    app = build_service_app(ctx, owns_queue=True)
    # Everything imported and built so far lives as long as the worker, yet every full
    # collection of the cyclic GC walked it: ~157,000 objects, 85-100 CPU ms a collection
    # (`make bench-memory`), a stall of every request in flight each time (issue 22).
    # Frozen, the GC leaves them out; only what the worker makes from now on is walked.
    gc.freeze()
    return app

"""Who sees the feature: flagd's in-process evaluator over the flags in config.

The rules (zones, a stable percentage of users, an allowlist) are data in
``config.experiments``; this module only evaluates them.
"""

from __future__ import annotations

import json
import threading

import structlog
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError

from qrpay.kernel.config import Experiments

log = structlog.get_logger("qrpay.rollout")


class Rollout:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built_for: Experiments | None = None
        self._core = FlagdCore()

    def _core_for(self, experiments: Experiments) -> FlagdCore:
        # A reload replaces the config object, so identity is enough to notice new rules.
        if experiments is not self._built_for:
            with self._lock:
                if experiments is not self._built_for:
                    core = FlagdCore()
                    core.set_flags_and_get_changed_keys(json.dumps({"flags": experiments.flags}))
                    self._core = core
                    self._built_for = experiments
        return self._core

    def is_available(
        self, experiments: Experiments, *, uuid: str, phone_id: str, nearest_zone: str
    ) -> bool:
        context = EvaluationContext(
            targeting_key=uuid,
            attributes={"uuid": uuid, "phone_id": phone_id, "nearest_zone": nearest_zone},
        )
        try:
            result = self._core_for(experiments).resolve_boolean_value(
                experiments.availability_flag, False, context
            )
        except OpenFeatureError as exc:
            # A missing or broken flag switches the feature off rather than failing the app.
            log.warning("rollout_flag_failed", flag=experiments.availability_flag, error=repr(exc))
            return False
        return result.value is True

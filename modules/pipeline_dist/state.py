"""The distributor API's per-worker state: the admission store, the lease sweeper, the
verified-key cache and the activity notes (key uses, refusal counts), made at startup
(`plugin.startup`) and kept in the app context's extras."""
from __future__ import annotations

from litestar.connection import ASGIConnection

from app.core.cache import TTLCache
from modules.pipeline_dist.activity import Activity
from modules.pipeline_dist.admission import Store, Sweeper

STATE_KEY = "dist"


class DistState:
    def __init__(self, store: Store, sweeper: Sweeper, keys: TTLCache, activity: Activity):
        self.store, self.sweeper, self.keys, self.activity = store, sweeper, keys, activity


def state_of(request: ASGIConnection) -> DistState:
    return request.app.state.ctx.extras[STATE_KEY]

"""The distributor API as a Litestar plugin: the app core knows nothing of distributors.

`create_app` finds `PLUGINS` through the `plugins` hook (app.core.hooks) of every module in the
manifest. This one mounts the keyed router under `/api/dist/v1` (with its key check and its
error handler) and, beside it without a key, the API's own docs (`dist_docs`); opens the
admission store, the lease sweeper and the activity notes at startup (after the app's engines)
and closes them at shutdown (before them); adds the key's security schemes to the OpenAPI
document; and declares its prefix as key-authenticated: the session middleware and CSRF leave it
to the key check.
"""
from __future__ import annotations

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol

from app.core.cache import TTLCache
from app.core.context import AppContext
from modules.pipeline_dist import api, dist_docs
from modules.pipeline_dist.activity import Activity
from modules.pipeline_dist.admission import Sweeper
from modules.pipeline_dist.state import STATE_KEY, DistState
from modules.pipeline_dist.stores import open_store


async def startup(app: Litestar) -> None:
    """After the engines exist (AppContext.start): the store (raw pool on MariaDB), the sweeper,
    and the API's security schemes in the OpenAPI document (built lazily, on the first /schema)."""
    ctx: AppContext = app.state.ctx
    store = await open_store(ctx.settings, ctx.db, ctx.catalog)
    sweeper = Sweeper(store, ctx.settings)
    sweeper.start()
    activity = Activity(ctx)
    activity.start()
    ctx.extras[STATE_KEY] = DistState(store, sweeper, TTLCache(ctx.settings.key_cache_seconds), activity)
    config = app.openapi_config
    if config is not None:
        schemes = Components(security_schemes={
            "DistributorKey": SecurityScheme(type="http", scheme="bearer", bearer_format="pdk_ key",
                                             description="Authorization: Bearer pdk_…"),
            "DistributorApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header")})
        existing = config.components if isinstance(config.components, list) else [config.components]
        if not any(c.security_schemes and "DistributorKey" in c.security_schemes for c in existing):
            config.components = [*existing, schemes]


async def shutdown(app: Litestar) -> None:
    state: DistState | None = app.state.ctx.extras.pop(STATE_KEY, None)
    if state is not None:
        await state.sweeper.stop()
        await state.activity.stop()
        await state.store.close()


class DistributorApiPlugin(InitPluginProtocol):
    """Routes, lifecycle and error handling of the keyed distributor API."""

    keyed_prefix = "/api/dist/"

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([*api.handlers, *dist_docs.handlers])
        app_config.on_startup.append(startup)
        app_config.on_shutdown.insert(0, shutdown)
        return app_config


PLUGINS = [DistributorApiPlugin()]

"""The distributor API as a Litestar plugin: the app core knows nothing of distributors.

`create_app` finds `PLUGINS` through the `plugins` hook (app.core.hooks) of every module in the
manifest. This one mounts the keyed router under `/api/dist/v1`, opens the admission store at
startup (after the app's engines) and closes it at shutdown (before them), and declares its
prefix as key-authenticated: the session middleware and CSRF leave it to the key check.
"""
from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from modules.pipeline_dist import api


class DistributorApiPlugin(InitPluginProtocol):
    """Routes, lifecycle and error handling of the keyed distributor API."""

    keyed_prefix = "/api/dist/"

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(api.handlers)
        app_config.on_startup.append(api.startup)
        app_config.on_shutdown.insert(0, api.shutdown)
        return app_config


PLUGINS = [DistributorApiPlugin()]

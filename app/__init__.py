"""Pipeline-App: the Litestar runtime that serves the compiled manifest."""

"""Django admin over the `pipelines` table: the second peer of `bench/peers.py` (project and app at once)."""

"""The ASGI entry point uvicorn imports in each worker process."""
from app.main import create_app

app = create_app()

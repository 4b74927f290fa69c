"""Pages of pipeline_ops beyond its tables' CRUD pages."""
from modules.pipeline_ops.usage_report import PAGES

__all__ = ["PAGES"]

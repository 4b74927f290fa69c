"""Pages of pipeline_ops beyond its tables' CRUD pages: handler name → handler; module.json
declares each one's path and methods."""
from modules.pipeline_ops.usage_report import usage_daily

PAGES = {"usage_daily": usage_daily}

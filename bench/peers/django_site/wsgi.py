"""What gunicorn serves: `gunicorn --chdir bench/peers django_site.wsgi:application`."""
from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")
application = get_wsgi_application()

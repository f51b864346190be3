import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django_application = get_wsgi_application()

# The annotation loop's next/submit with a token, answered without the middleware chain and
# DRF's machinery (labeling/api/fastpath.py); every other request, and every error, is Django's.
from labeling.api.fastpath import with_annotation_fast_path  # noqa: E402 (needs django.setup)

application = with_annotation_fast_path(django_application)

"""Every periodic task in the beat schedule names a task the workers have."""

from celery import current_app
from django.conf import settings


def test_beat_schedule_names_registered_tasks():
    current_app.loader.import_default_modules()
    names = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert names
    assert [n for n in names if n not in current_app.tasks] == []

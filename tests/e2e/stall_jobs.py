"""Imported by the end-to-end tests' worker processes (CELERY_IMPORTS, see
config/settings/test.py) when FLYWHEEL_TEST_STALL_KINDS is set: a run of a job of one of those
kinds stops right after it has claimed the job (status running, its heartbeat beating) and
waits forever, as a worker does that is busy in the middle of a job, until the test kills it."""

import logging
import os
import time

from django.db import transaction

from labeling.models import Job

logger = logging.getLogger(__name__)

_KINDS = {k for k in (os.environ.get("FLYWHEEL_TEST_STALL_KINDS") or "").split(",") if k}
_save = Job.save


def _stall(job_id: int) -> None:
    logger.warning("Stalling in the middle of job %s until killed", job_id)
    while True:
        time.sleep(3600)


def _save_then_stall(self, *args, **kwargs):
    _save(self, *args, **kwargs)
    fields = kwargs.get("update_fields") or ()
    if self.kind in _KINDS and "attempts" in fields and self.status == Job.Status.RUNNING:
        transaction.on_commit(lambda: _stall(self.pk))


if _KINDS:
    Job.save = _save_then_stall

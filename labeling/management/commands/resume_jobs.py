"""python manage.py resume_jobs [--job ID ...] [--stale-seconds N]

Queue unfinished jobs of any kind again: the given ones, or every one whose worker has been
silent for N seconds (default settings.JOB_STALE_SECONDS), which is what the recovery sweep
(beat) does every JOB_RECOVERY_SWEEP_SECONDS. A resumed job carries on after its last committed
step. Run it after a worker crash when no beat runs, or from cron."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from labeling.jobtasks import job_dispatch
from labeling.models import Job
from labeling.services.jobs import jobs_recover


class Command(BaseCommand):
    help = "Queue again unfinished jobs whose worker died (or the given jobs)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--job", type=int, action="append", dest="job_ids", help="Job id (repeatable)."
        )
        parser.add_argument(
            "--stale-seconds",
            type=float,
            help="Silence that counts as a dead worker (default: settings.JOB_STALE_SECONDS).",
        )

    def handle(self, *args, job_ids: list[int] | None, stale_seconds: float | None, **options):
        if job_ids:
            for job in Job.objects.filter(pk__in=job_ids).order_by("pk"):
                if job.is_finished:
                    self.stdout.write(f"Job #{job.pk} is {job.status}; skipped.")
                    continue
                job_dispatch(job)
                self.stdout.write(f"Queued {job.get_kind_display().lower()} job #{job.pk} again.")
            return
        resumed = jobs_recover(dispatch=job_dispatch, stale_seconds=stale_seconds)
        if not resumed:
            self.stdout.write("No silent jobs.")
        for job in Job.objects.filter(pk__in=resumed).order_by("pk"):
            self.stdout.write(f"Queued {job.get_kind_display().lower()} job #{job.pk} again.")

"""python manage.py resume_jobs [--job ID ...] [--stale-seconds N]

Queue unfinished import jobs again: the given ones, or every one whose worker has been silent for
N seconds (default settings.JOB_STALE_SECONDS). A resumed job carries on after its last committed
batch. Run it after a worker crash, or from cron."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from labeling.services.imports import import_job_resume, import_jobs_resume_stale


class Command(BaseCommand):
    help = "Re-queue unfinished import jobs whose worker died (or the given jobs)."

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
            for job_id in job_ids:
                if import_job_resume(job_id=job_id):
                    self.stdout.write(f"Queued import job #{job_id} again.")
                else:
                    self.stdout.write(f"Job #{job_id} is finished or not an import; skipped.")
            return
        resumed = import_jobs_resume_stale(stale_seconds=stale_seconds)
        if not resumed:
            self.stdout.write("No stale import jobs.")
        for job_id in resumed:
            self.stdout.write(f"Queued import job #{job_id} again.")

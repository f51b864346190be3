"""python manage.py import_items PROJECT FILE [--format csv|jsonl|json] [--text-field F]
[--id-field F] [--label-field F] [--label-delimiter D] [--delimiter D] [--skip-invalid]
[--labels-final]

Runs the import in this process (no worker needed) as a Job, so it shows in the UI like any
other import; prints the report and exits non-zero if the job failed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import ApplicationError
from labeling.importing import FORMATS
from labeling.models import Job, Project
from labeling.services.imports import import_job_create, import_job_fail, import_run

SHOWN_ERRORS = 50


class Command(BaseCommand):
    help = "Import items from a CSV, JSON Lines or JSON file into a project (runs inline)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project name or id.")
        parser.add_argument("file", help="Path of the file to import.")
        parser.add_argument(
            "--format", dest="fmt", choices=list(FORMATS), help="Default: from the file name."
        )
        parser.add_argument("--text-field", help="Column with the text (default: text).")
        parser.add_argument(
            "--id-field", help="Column with the external id (default: id, if present)."
        )
        parser.add_argument("--label-field", help="Column with existing labels (optional).")
        parser.add_argument(
            "--label-delimiter", help="Separates several labels in one cell (default: |)."
        )
        parser.add_argument("--delimiter", help="CSV delimiter (default: guessed).")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the valid rows and report the others (default: import nothing if any "
            "row is bad).",
        )
        parser.add_argument(
            "--labels-final",
            action="store_true",
            help="Imported labels are final labels, not suggestions.",
        )

    def handle(self, *args, project: str, file: str, fmt: str | None, **options):
        found = Project.objects.filter(name=project).first()
        if found is None and project.isdigit():
            found = Project.objects.filter(pk=int(project)).first()
        if found is None:
            raise CommandError(f"No project named or numbered '{project}'.")
        mapping = {
            key: options[option]
            for key, option in (
                ("text", "text_field"),
                ("id", "id_field"),
                ("label", "label_field"),
                ("label_delimiter", "label_delimiter"),
                ("delimiter", "delimiter"),
            )
            if options.get(option)
        }
        try:
            job = import_job_create(
                project=found,
                path=file,
                file_format=fmt,
                mapping=mapping,
                skip_invalid=options["skip_invalid"],
                labels_are_final=options["labels_final"],
                copy_file=False,
                enqueue=False,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Import job #{job.pk}: reading {file} ...")
        try:
            job = import_run(job_id=job.pk)
        except Exception as exc:
            import_job_fail(job_id=job.pk, exc=exc)
            raise CommandError(f"Import job #{job.pk} failed: {exc}") from exc
        self._report(job)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"Import job #{job.pk} {job.status}: {job.message}")

    def _report(self, job: Job) -> None:
        result = job.result or {}
        if job.status == Job.Status.SUCCEEDED:
            self.stdout.write(f"Import job #{job.pk} succeeded. {job.message}")
            for key in ("created", "skipped_existing_id", "skipped_duplicate_content", "invalid"):
                self.stdout.write(f"  {key.replace('_', ' ')}: {result.get(key, 0)}")
        errors = result.get("errors") or []
        if errors:
            total = result.get("error_count", len(errors))
            self.stdout.write(f"Problems ({total}):")
            for error in errors[:SHOWN_ERRORS]:
                where = f"row {error['row']}" if error.get("row") is not None else "file"
                if error.get("line"):
                    where += f" (line {error['line']})"
                self.stdout.write(f"  {where}, {error.get('field') or '-'}: {error['reason']}")
            if total > SHOWN_ERRORS:
                self.stdout.write(f"  ... and {total - SHOWN_ERRORS} more.")

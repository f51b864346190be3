"""Import crowd annotations into a project: `manage.py import_crowd PROJECT FILE ...`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import ApplicationError
from labeling.models import Project
from quality.crowdfile import CrowdFileError, crowd_rows_read
from quality.services.crowd_import import crowd_annotations_import


class Command(BaseCommand):
    help = (
        "Import (item external id, annotator id, label) rows as annotations of a project's "
        "items. Annotators become inactive accounts named crowd.<id>. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project id or name.")
        parser.add_argument("file")
        parser.add_argument("--item-column", default="item")
        parser.add_argument("--worker-column", default="worker")
        parser.add_argument("--label-column", default="label")
        parser.add_argument("--format", choices=["csv", "jsonl"], default=None)
        parser.add_argument("--delimiter", default=None)
        parser.add_argument("--label-delimiter", default="|", help="Multi-label projects.")

    def handle(self, *args, **options):
        ref = options["project"]
        project = Project.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        project = project or Project.objects.filter(name=ref).first()
        if project is None:
            raise CommandError(f"No project {ref!r}.")
        try:
            rows = crowd_rows_read(
                options["file"],
                item_column=options["item_column"],
                worker_column=options["worker_column"],
                label_column=options["label_column"],
                fmt=options["format"],
                delimiter=options["delimiter"],
            )
            result = crowd_annotations_import(
                project=project, rows=rows, label_delimiter=options["label_delimiter"]
            )
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {options['file']}") from exc
        except CrowdFileError as exc:
            raise CommandError(f"{options['file']}: {exc}") from exc
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{result['created']} annotations created, {result['updated']} updated, "
            f"{result['unchanged']} unchanged, by {result['annotators']} annotators on "
            f"{result['items']} items. Re-aggregation is queued."
        )

"""python manage.py export_items PROJECT --format jsonl -o FILE|- [--finished-only] [--label L]
[--changed-since ISO]"""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import ApplicationError
from labeling.models import Project
from labeling.services.exports import EXPORT_FORMATS, export_stream, parse_changed_since


class Command(BaseCommand):
    help = "Stream a project's items, final labels, annotations and lineage to a file or stdout."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project name or id.")
        parser.add_argument("--format", dest="fmt", choices=list(EXPORT_FORMATS), default="jsonl")
        parser.add_argument(
            "-o", "--output", default="-", help="File to write, or - for stdout (default)."
        )
        parser.add_argument("--finished-only", action="store_true", help="Only finished items.")
        parser.add_argument("--label", help="Only items whose final labels contain this value.")
        parser.add_argument(
            "--changed-since", help="Only items changed at or after this ISO 8601 time (UTC)."
        )

    def handle(self, *args, project: str, fmt: str, output: str, **options):
        found = Project.objects.filter(name=project).first()
        if found is None and project.isdigit():
            found = Project.objects.filter(pk=int(project)).first()
        if found is None:
            raise CommandError(f"No project named or numbered '{project}'.")
        try:
            changed_since = (
                parse_changed_since(options["changed_since"]) if options["changed_since"] else None
            )
            stream = export_stream(
                project=found,
                fmt=fmt,
                finished_only=options["finished_only"],
                label=options["label"],
                changed_since=changed_since,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

        started = time.monotonic()
        if output == "-":
            # Chunks end on record boundaries, so each one decodes on its own.
            for chunk in stream:
                self.stdout.write(chunk.decode(), ending="")
            return
        # Write beside the target and rename at the end: a failed export never leaves a
        # truncated file under the requested name.
        partial = f"{output}.part"
        written = 0
        try:
            with open(partial, "wb") as handle:
                for chunk in stream:
                    handle.write(chunk)
                    written += len(chunk)
            os.replace(partial, output)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
        self.stderr.write(
            f"Wrote {written:,} bytes to {output} in {time.monotonic() - started:.1f}s."
        )

"""Autovacuum for the queue's tables by a number of dead rows, not a fraction of the table.

Every submit moves an item from `open` to `done` and updates an assignment; the old row
versions stay in the queue index (project, status, priority, id) until a vacuum, right where
the "next item" scan starts. PostgreSQL's default vacuums a table once 20% of it is dead: for a
project of a million items, 200,000 submits in which every "next" walks more dead entries (after
108,206 of them the scan read 884 buffers instead of 57: docs/benchmarks.md). Vacuum them after
a fixed number of changed rows instead; a vacuum that finds little to do is cheap (it skips
pages the visibility map marks all-visible). PostgreSQL only; a no-op elsewhere.
"""

from django.db import migrations

TABLES = ("labeling_item", "labeling_assignment")
SETTINGS = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000, "
    "autovacuum_analyze_scale_factor = 0.02"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET ({SETTINGS})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    names = ", ".join(part.split("=")[0].strip() for part in SETTINGS.split(","))
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET ({names})")


class Migration(migrations.Migration):
    dependencies = [("labeling", "0004_assignment_live_index")]

    operations = [migrations.RunPython(forwards, backwards)]

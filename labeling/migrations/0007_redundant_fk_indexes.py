"""Drop the single-column indexes Django made for five foreign keys whose column already leads a
composite index or unique constraint (assignment_unique, assignment_user_idx, annotation_unique,
annotation_user_idx, annotation_event_item_idx). Each lease, submit and history row wrote them;
every lookup by these columns can use the composite index instead.

Only the indexes are dropped (found by introspection, so the names need not be known); the
foreign-key constraints stay as they are. Django's own AlterField would drop and re-add each
constraint, re-validating every row of these large tables.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (table, column) whose own index is redundant.
COLUMNS = (
    ("labeling_annotation", "item_id"),
    ("labeling_annotation", "project_id"),
    ("labeling_annotationevent", "item_id"),
    ("labeling_assignment", "item_id"),
    ("labeling_assignment", "user_id"),
)


def _single_column_indexes(schema_editor, table: str, column: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and info["columns"] == [column]
    ]


def forwards(apps, schema_editor):
    for table, column in COLUMNS:
        for name in _single_column_indexes(schema_editor, table, column):
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def backwards(apps, schema_editor):
    for table, column in COLUMNS:
        if not _single_column_indexes(schema_editor, table, column):
            name = schema_editor.quote_name(f"{table}_{column}_fk_idx")
            schema_editor.execute(
                f"CREATE INDEX {name} ON {schema_editor.quote_name(table)} "
                f"({schema_editor.quote_name(column)})"
            )


def _fk(to, related_name, on_delete=django.db.models.deletion.CASCADE):
    return models.ForeignKey(db_index=False, on_delete=on_delete, related_name=related_name, to=to)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0006_hot_path_functions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.AlterField(
                    model_name="annotation", name="item", field=_fk("labeling.item", "annotations")
                ),
                migrations.AlterField(
                    model_name="annotation", name="project", field=_fk("labeling.project", "+")
                ),
                migrations.AlterField(
                    model_name="annotationevent",
                    name="item",
                    field=_fk("labeling.item", "annotation_events"),
                ),
                migrations.AlterField(
                    model_name="assignment", name="item", field=_fk("labeling.item", "assignments")
                ),
                migrations.AlterField(
                    model_name="assignment",
                    name="user",
                    field=_fk(settings.AUTH_USER_MODEL, "assignments"),
                ),
            ],
        )
    ]

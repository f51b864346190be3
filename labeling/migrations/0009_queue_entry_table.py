"""The queue moves out of the item table into a narrow table kept by triggers.

Every submit updated the wide item row (its count, status, updated_at, final label). Because
`status` (in item_queue_idx) and `updated_at` (item_updated_idx) were indexed, none of those
updates could be HOT: each one put a new entry into all six item indexes at random places, and
after a checkpoint wrote each of those index pages whole to the WAL (85% of the loop's WAL,
docs/benchmarks.md). Each vacuum then had to read the whole item heap and every index.

Now:
- `labeling_queueentry` (item, project, priority) holds exactly the items with status `open`
  that are not gold, ranked by `queue_entry_rank_idx` (project, priority DESC, item).
- Triggers on `labeling_item` keep it so: an insert adds open items (one statement-level insert
  per COPY or bulk insert on PostgreSQL); a change of status, gold flag or priority adds,
  re-ranks or removes the entry; deleting items deletes their entries. No code writes the
  table, and it has no foreign-key constraints (their checks would lock, so write, the item
  row of every entry inserted).
- item_queue_idx and item_updated_idx are dropped, so a submit's update of the item is HOT
  (the export's `changed_since` filter now reads the project's rows instead of an index).
- The item table gets fillfactor 90 on PostgreSQL, so a row's new version fits on its page
  (rows written before this keep their pages full until they are rewritten); the queue table
  gets 0005's autovacuum thresholds.
- `labeling_queue_next` scans the queue table and locks the item row, as before.

The text here is frozen with the migration. On SQLite, a later migration that makes Django
rebuild the item table drops these triggers and must run `SQLITE_TRIGGERS` again.
"""

from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

PG_TRIGGERS = r"""
CREATE FUNCTION labeling_item_queue_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO labeling_queueentry (item_id, project_id, priority)
    SELECT n.id, n.project_id, n.priority FROM labeling_item_inserted n
     WHERE n.status = 'open' AND NOT n.is_gold;
    RETURN NULL;
END;
$$;
CREATE TRIGGER labeling_item_queue_insert AFTER INSERT ON labeling_item
    REFERENCING NEW TABLE AS labeling_item_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION labeling_item_queue_insert();

CREATE FUNCTION labeling_item_queue_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM labeling_queueentry q USING labeling_item_deleted d WHERE q.item_id = d.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER labeling_item_queue_delete AFTER DELETE ON labeling_item
    REFERENCING OLD TABLE AS labeling_item_deleted
    FOR EACH STATEMENT EXECUTE FUNCTION labeling_item_queue_delete();

CREATE FUNCTION labeling_item_queue_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'open' AND NOT NEW.is_gold THEN
        UPDATE labeling_queueentry SET priority = NEW.priority WHERE item_id = NEW.id;
        IF NOT FOUND THEN
            INSERT INTO labeling_queueentry (item_id, project_id, priority)
            VALUES (NEW.id, NEW.project_id, NEW.priority)
            ON CONFLICT (item_id) DO UPDATE SET priority = EXCLUDED.priority;
        END IF;
    ELSE
        DELETE FROM labeling_queueentry WHERE item_id = NEW.id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER labeling_item_queue_update AFTER UPDATE OF status, is_gold, priority
    ON labeling_item FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.is_gold IS DISTINCT FROM NEW.is_gold
          OR OLD.priority IS DISTINCT FROM NEW.priority)
    EXECUTE FUNCTION labeling_item_queue_update();
"""

PG_DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS labeling_item_queue_insert ON labeling_item;
DROP TRIGGER IF EXISTS labeling_item_queue_update ON labeling_item;
DROP TRIGGER IF EXISTS labeling_item_queue_delete ON labeling_item;
DROP FUNCTION IF EXISTS labeling_item_queue_insert();
DROP FUNCTION IF EXISTS labeling_item_queue_delete();
DROP FUNCTION IF EXISTS labeling_item_queue_update();
"""

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER labeling_item_queue_insert AFTER INSERT ON labeling_item
    WHEN NEW.status = 'open' AND NOT NEW.is_gold
    BEGIN
        INSERT INTO labeling_queueentry (item_id, project_id, priority)
        VALUES (NEW.id, NEW.project_id, NEW.priority);
    END
    """,
    """
    CREATE TRIGGER labeling_item_queue_delete AFTER DELETE ON labeling_item
    BEGIN
        DELETE FROM labeling_queueentry WHERE item_id = OLD.id;
    END
    """,
    """
    CREATE TRIGGER labeling_item_queue_update AFTER UPDATE OF status, is_gold, priority
    ON labeling_item
    WHEN OLD.status IS NOT NEW.status OR OLD.is_gold IS NOT NEW.is_gold
         OR OLD.priority IS NOT NEW.priority
    BEGIN
        DELETE FROM labeling_queueentry WHERE item_id = NEW.id;
        INSERT INTO labeling_queueentry (item_id, project_id, priority)
        SELECT NEW.id, NEW.project_id, NEW.priority
         WHERE NEW.status = 'open' AND NOT NEW.is_gold;
    END
    """,
)

SQLITE_DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS labeling_item_queue_insert",
    "DROP TRIGGER IF EXISTS labeling_item_queue_update",
    "DROP TRIGGER IF EXISTS labeling_item_queue_delete",
)

AUTOVACUUM = import_module("labeling.migrations.0005_queue_autovacuum").SETTINGS

BACKFILL = """
INSERT INTO labeling_queueentry (item_id, project_id, priority)
SELECT id, project_id, priority FROM labeling_item WHERE status = 'open' AND NOT is_gold
"""

QUEUE_NEXT = r"""
CREATE OR REPLACE FUNCTION labeling_queue_next(
    p_project bigint, p_user integer, p_k integer, p_now timestamptz, p_expires timestamptz,
    p_exclude bigint[]
) RETURNS TABLE (r_assignment_id bigint, r_item_id bigint, r_leased_at timestamptz)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
DECLARE
    v_assignment bigint;
    v_item bigint;
    v_candidates bigint[];
    v_leased timestamptz;
BEGIN
    -- The user's live lease first (not one of the items the page already shows), renewed.
    UPDATE labeling_assignment a SET expires_at = p_expires, updated_at = p_now
     WHERE a.id = (SELECT h.id FROM labeling_assignment h
                    WHERE h.project_id = p_project AND h.user_id = p_user
                      AND h.status = 'leased' AND h.expires_at > p_now
                      AND NOT (h.item_id = ANY (p_exclude))
                    ORDER BY h.leased_at, h.id LIMIT 1)
    RETURNING a.id, a.item_id, a.leased_at INTO v_assignment, v_item, v_leased;
    IF FOUND THEN
        RETURN QUERY SELECT v_assignment, v_item, v_leased;
        RETURN;
    END IF;
    FOR v_round IN 1..60 LOOP
        -- Lock the first candidate in queue order (an index scan on queue_entry_rank_idx that
        -- stops at the first item with a free slot), skipping items others hold locked. The
        -- lock is the item's row lock, which every claim and submit on the item takes; an
        -- item finished since the scan's snapshot fails `i.status = 'open'` when re-checked
        -- under the lock. An item that wants one annotation (the common case) is free when
        -- nobody else holds a live lease on it; items that want more count the live leases.
        v_candidates := ARRAY(
            SELECT i.id FROM labeling_queueentry q
              JOIN labeling_item i ON i.id = q.item_id
             WHERE q.project_id = p_project AND i.status = 'open'
               AND i.annotation_count < COALESCE(i.annotations_wanted, p_k) AND NOT i.is_gold
               AND NOT EXISTS (
                   SELECT 1 FROM labeling_assignment mine
                    WHERE mine.item_id = q.item_id AND mine.user_id = p_user
                      AND mine.status IN ('submitted', 'skipped'))
               AND (CASE WHEN COALESCE(i.annotations_wanted, p_k) = 1 THEN NOT EXISTS (
                          SELECT 1 FROM labeling_assignment o
                           WHERE o.item_id = q.item_id AND o.status = 'leased'
                             AND o.expires_at > p_now AND o.user_id <> p_user)
                    ELSE i.annotation_count + (
                          SELECT COUNT(*) FROM labeling_assignment o
                           WHERE o.item_id = q.item_id AND o.status = 'leased'
                             AND o.expires_at > p_now AND o.user_id <> p_user)
                         < COALESCE(i.annotations_wanted, p_k) END)
               AND NOT (q.item_id = ANY (p_exclude))
             ORDER BY q.priority DESC, q.item_id
             LIMIT 1 FOR UPDATE OF i SKIP LOCKED);
        IF cardinality(v_candidates) = 0 THEN
            RETURN;
        END IF;
        -- A new statement, so a new snapshot: it sees every lease committed by whoever held
        -- the candidate's lock before us.
        SELECT c.id INTO v_item
          FROM unnest(v_candidates) WITH ORDINALITY AS c(id, ord)
          JOIN labeling_item i ON i.id = c.id
         WHERE i.status = 'open'
           AND COALESCE(i.annotations_wanted, p_k) - i.annotation_count
               - (SELECT COUNT(*) FROM labeling_assignment o
                   WHERE o.item_id = i.id AND o.status = 'leased'
                     AND o.expires_at > p_now AND o.user_id <> p_user) > 0
         ORDER BY c.ord LIMIT 1;
        IF FOUND THEN
            INSERT INTO labeling_assignment
                   (item_id, project_id, user_id, status, leased_at, expires_at, updated_at)
            VALUES (v_item, p_project, p_user, 'leased', p_now, p_expires, p_now)
            ON CONFLICT (item_id, user_id) DO UPDATE
               SET status = EXCLUDED.status, leased_at = EXCLUDED.leased_at,
                   expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
            RETURNING id INTO v_assignment;
            RETURN QUERY SELECT v_assignment, v_item, p_now;
            RETURN;
        END IF;
        -- The candidate filled up between the scan's snapshot and its lock; read again.
    END LOOP;
END;
$$;
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_TRIGGERS)
        schema_editor.execute("ALTER TABLE labeling_item SET (fillfactor = 90)")
        # Vacuumed by dead rows, as migration 0005 does for the item and assignment tables.
        schema_editor.execute(f"ALTER TABLE labeling_queueentry SET ({AUTOVACUUM})")
        schema_editor.execute(QUEUE_NEXT)
    elif vendor == "sqlite":
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(f"the queue's triggers are not written for {vendor}")
    schema_editor.execute(BACKFILL)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP_TRIGGERS)
        schema_editor.execute("ALTER TABLE labeling_item RESET (fillfactor)")
        previous = import_module("labeling.migrations.0008_queue_next_one_candidate")
        schema_editor.execute(previous.QUEUE_NEXT)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP_TRIGGERS:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("labeling", "0008_queue_next_one_candidate")]

    operations = [
        migrations.CreateModel(
            name="QueueEntry",
            fields=[
                (
                    "item",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="queue_entry",
                        serialize=False,
                        to="labeling.item",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="labeling.project",
                    ),
                ),
                ("priority", models.FloatField()),
            ],
            options={
                "verbose_name_plural": "queue entries",
                "indexes": [
                    models.Index(
                        models.F("project"),
                        models.OrderBy(models.F("priority"), descending=True),
                        models.F("item"),
                        name="queue_entry_rank_idx",
                    )
                ],
            },
        ),
        migrations.RemoveIndex(model_name="item", name="item_queue_idx"),
        migrations.RemoveIndex(model_name="item", name="item_updated_idx"),
        migrations.RunPython(forwards, backwards),
    ]

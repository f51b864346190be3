"""`labeling_queue_next` locks one candidate per read instead of three.

Locking a row writes its page: with three candidates per "next" and one of them leased, two
item pages per request were written (and WAL-logged, the first time after each checkpoint as
whole pages) for nothing, and two more items were held locked (skipped by everyone else) for
the length of the call. A candidate that filled up between the scan's snapshot and its lock is
rare; the function then reads again, now up to 60 times (as many candidates as 20 reads of
three). Everything else is 0006's function unchanged.

PostgreSQL only; a no-op elsewhere. Backwards: 0006's text.
"""

from importlib import import_module

from django.db import migrations

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
        -- Lock the first candidate in queue order (an index scan on item_queue_idx that
        -- stops at the first item with a free slot), skipping items others hold locked. An
        -- item that wants one annotation (the common case) is free when nobody else holds a
        -- live lease on it; items that want more count the live leases. One row: each lock
        -- writes the row's page (and, first after a checkpoint, the whole page to the WAL).
        v_candidates := ARRAY(
            SELECT i.id FROM labeling_item i
             WHERE i.project_id = p_project AND i.status = 'open'
               AND i.annotation_count < COALESCE(i.annotations_wanted, p_k) AND NOT i.is_gold
               AND NOT EXISTS (
                   SELECT 1 FROM labeling_assignment mine
                    WHERE mine.item_id = i.id AND mine.user_id = p_user
                      AND mine.status IN ('submitted', 'skipped'))
               AND (CASE WHEN COALESCE(i.annotations_wanted, p_k) = 1 THEN NOT EXISTS (
                          SELECT 1 FROM labeling_assignment o
                           WHERE o.item_id = i.id AND o.status = 'leased'
                             AND o.expires_at > p_now AND o.user_id <> p_user)
                    ELSE i.annotation_count + (
                          SELECT COUNT(*) FROM labeling_assignment o
                           WHERE o.item_id = i.id AND o.status = 'leased'
                             AND o.expires_at > p_now AND o.user_id <> p_user)
                         < COALESCE(i.annotations_wanted, p_k) END)
               AND NOT (i.id = ANY (p_exclude))
             ORDER BY i.priority DESC, i.id
             LIMIT 1 FOR UPDATE OF i SKIP LOCKED);
        IF cardinality(v_candidates) = 0 THEN
            RETURN;
        END IF;
        -- A new statement, so a new snapshot: it sees every lease committed by whoever held
        -- a candidate's lock before us.
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
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(QUEUE_NEXT)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        previous = import_module("labeling.migrations.0006_hot_path_functions")
        schema_editor.execute(previous.QUEUE_NEXT)


class Migration(migrations.Migration):
    dependencies = [("labeling", "0007_redundant_fk_indexes")]

    operations = [migrations.RunPython(forwards, backwards)]

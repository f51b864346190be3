"""The annotation loop's two requests as PostgreSQL functions: one round trip each.

`labeling_queue_next` (renew the user's live lease, or lock candidates and lease the first with
a free slot) and `labeling_annotation_submit` (lock the item, read what the submit decides on,
write the annotation) are what `labeling.services.queue.queue_next_item` and
`labeling.services.annotations.annotation_submit` run on PostgreSQL; other backends run the
same rules through the ORM. Called as one statement in autocommit mode, each is its own
transaction: no BEGIN and COMMIT round trips, and no second statement from the client.

Both read their state in a statement that starts *after* the item's row lock is held: a VOLATILE
function takes a new snapshot for every statement under READ COMMITTED, so it sees what the
previous lock holder committed (a lease, the same user's first submit). A single statement that
locks and reads keeps the snapshot it started with while it waits for the lock
(tests/labeling/test_lock_wait_races.py).

The text here is frozen with the migration; a change is a new migration with CREATE OR REPLACE.
PostgreSQL only; a no-op elsewhere.
"""

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
    FOR v_round IN 1..20 LOOP
        -- Lock up to three candidates in queue order (an index scan on item_queue_idx that
        -- stops at the first items with a free slot), skipping items others hold locked. An
        -- item that wants one annotation (the common case) is free when nobody else holds a
        -- live lease on it; items that want more count the live leases.
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
             LIMIT 3 FOR UPDATE OF i SKIP LOCKED);
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
        -- Every candidate filled up while we waited for it; read again.
    END LOOP;
END;
$$;
"""

ANNOTATION_SUBMIT = r"""
CREATE OR REPLACE FUNCTION labeling_annotation_submit(
    p_project bigint, p_user integer, p_item bigint, p_labels jsonb, p_time_spent_ms integer,
    p_suggestion bigint, p_k integer, p_now timestamptz
) RETURNS TABLE (
    r_outcome text, r_annotation_id bigint, r_annotation_count integer,
    r_annotations_wanted integer, r_is_gold boolean, r_final_changed boolean
)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
DECLARE
    v_count integer;
    v_wanted integer;
    v_gold boolean;
    v_open boolean;
    v_live boolean;
    v_others bigint;
    v_existing bigint;
    v_known bigint;
    v_k integer;
    v_final boolean;
    v_annotation bigint;
BEGIN
    -- The item's row lock serialises every claim and submit on the item.
    PERFORM 1 FROM labeling_item WHERE id = p_item AND project_id = p_project FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::integer, NULL::integer,
                            NULL::boolean, NULL::boolean;
        RETURN;
    END IF;
    -- What the submit decides on, read after the lock is held (a new snapshot).
    SELECT i.annotation_count, i.annotations_wanted, i.is_gold, i.status = 'open',
           COALESCE(a.status = 'leased' AND a.expires_at > p_now, false),
           (SELECT COUNT(*) FROM labeling_assignment o
             WHERE o.item_id = i.id AND o.status = 'leased' AND o.expires_at > p_now
               AND o.user_id <> p_user),
           (SELECT MIN(an.id) FROM labeling_annotation an
             WHERE an.item_id = i.id AND an.annotator_id = p_user),
           (SELECT COUNT(*) FROM labeling_label l
             WHERE l.project_id = p_project
               AND l.value IN (SELECT jsonb_array_elements_text(p_labels)))
      INTO v_count, v_wanted, v_gold, v_open, v_live, v_others, v_existing, v_known
      FROM labeling_item i
      LEFT JOIN labeling_assignment a ON a.item_id = i.id AND a.user_id = p_user
     WHERE i.id = p_item;
    IF v_known < jsonb_array_length(p_labels) THEN
        RETURN QUERY SELECT 'unknown_labels', NULL::bigint, v_count, v_wanted, v_gold, false;
        RETURN;
    END IF;
    IF v_existing IS NOT NULL THEN  -- a second submit edits the first (the caller does that)
        RETURN QUERY SELECT 'existing', v_existing, v_count, v_wanted, v_gold, false;
        RETURN;
    END IF;
    v_k := COALESCE(v_wanted, p_k);
    -- Accepted on a live lease, or (expired) on a free slot; gold items always have one.
    IF NOT v_live AND NOT v_gold AND (NOT v_open OR v_k - v_count - v_others <= 0) THEN
        RETURN QUERY SELECT 'conflict', NULL::bigint, v_count, v_wanted, v_gold, false;
        RETURN;
    END IF;
    IF p_suggestion IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM labeling_prediction p WHERE p.id = p_suggestion AND p.item_id = p_item)
    THEN
        RETURN QUERY SELECT 'bad_suggestion', NULL::bigint, v_count, v_wanted, v_gold, false;
        RETURN;
    END IF;
    -- With k == 1 the one annotation is the item's final label (lineage: the annotation).
    v_final := v_k = 1 AND v_count = 0 AND NOT v_gold;
    INSERT INTO labeling_annotation (created_at, updated_at, item_id, project_id, annotator_id,
                                     labels, time_spent_ms, suggestion_id)
    VALUES (p_now, p_now, p_item, p_project, p_user, p_labels, p_time_spent_ms, p_suggestion)
    RETURNING id INTO v_annotation;
    INSERT INTO labeling_annotationevent (annotation_id_ref, item_id, annotator_id, action,
                                          labels, previous_labels, time_spent_ms, created_at)
    VALUES (v_annotation, p_item, p_user, 'create', p_labels, NULL, p_time_spent_ms, p_now);
    INSERT INTO labeling_assignment (item_id, project_id, user_id, status, leased_at,
                                     expires_at, updated_at)
    VALUES (p_item, p_project, p_user, 'submitted', p_now, p_now, p_now)
    ON CONFLICT (item_id, user_id) DO UPDATE
       SET status = EXCLUDED.status, leased_at = EXCLUDED.leased_at,
           expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at;
    -- Count it; close the item at k (gold items stay open).
    UPDATE labeling_item i
       SET annotation_count = i.annotation_count + 1, updated_at = p_now,
           status = CASE WHEN NOT v_gold AND i.annotation_count >= v_k - 1 THEN 'done'
                         ELSE i.status END,
           final_labels = CASE WHEN v_final THEN p_labels ELSE i.final_labels END,
           final_confidence = CASE WHEN v_final THEN 1.0 ELSE i.final_confidence END,
           final_lineage = CASE WHEN v_final THEN jsonb_build_object(
                   'method', 'single_annotator', 'version', '1',
                   'annotations', jsonb_build_array(v_annotation),
                   'annotators', jsonb_build_array(p_user))
               ELSE i.final_lineage END
     WHERE i.id = p_item;
    RETURN QUERY SELECT 'created', v_annotation, v_count + 1, v_wanted, v_gold, v_final;
END;
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS labeling_queue_next(bigint, integer, integer, timestamptz, timestamptz,
                                            bigint[]);
DROP FUNCTION IF EXISTS labeling_annotation_submit(bigint, integer, bigint, jsonb, integer,
                                                   bigint, integer, timestamptz);
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(QUEUE_NEXT)
    schema_editor.execute(ANNOTATION_SUBMIT)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("labeling", "0005_queue_autovacuum")]

    operations = [migrations.RunPython(forwards, backwards)]

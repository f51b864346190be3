"""The submit's database function refuses an item never handed to the user.

`labeling_annotation_submit` (migration 0006) accepted a submit for any item of the project
with a free slot, and gold items always have one: an annotator could answer any item by id
without being served it. It now answers `not_served`, writing nothing, unless the user has an
assignment on the item (a lease, live or expired, as `next/` or an undo makes) or an earlier
answer to edit. Same signature and result columns, still one statement per submit; the other
backends do the same in `labeling.services.annotations._submit_orm`.
"""

from django.db import migrations

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
    v_served boolean;
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
           a.id IS NOT NULL,
           (SELECT COUNT(*) FROM labeling_assignment o
             WHERE o.item_id = i.id AND o.status = 'leased' AND o.expires_at > p_now
               AND o.user_id <> p_user),
           (SELECT MIN(an.id) FROM labeling_annotation an
             WHERE an.item_id = i.id AND an.annotator_id = p_user),
           (SELECT COUNT(*) FROM labeling_label l
             WHERE l.project_id = p_project
               AND l.value IN (SELECT jsonb_array_elements_text(p_labels)))
      INTO v_count, v_wanted, v_gold, v_open, v_live, v_served, v_others, v_existing, v_known
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
    -- Only an item handed to the user (an assignment of theirs, in any state): nobody
    -- answers an item by id without being served it, gold items included.
    IF NOT v_served THEN
        RETURN QUERY SELECT 'not_served', NULL::bigint, v_count, v_wanted, v_gold, false;
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


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(ANNOTATION_SUBMIT)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from importlib import import_module

    previous = import_module("labeling.migrations.0006_hot_path_functions")
    schema_editor.execute(previous.ANNOTATION_SUBMIT)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0010_project_queue_order_label_description"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]

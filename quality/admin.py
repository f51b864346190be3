"""Admin: quality settings inline on the project, gold actions on items, and the record of
adjudication decisions and annotator reliability (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages

from labeling.admin import ItemAdmin, ProjectAdmin
from labeling.errors import ApplicationError
from quality.models import Adjudication, AnnotatorReliability, QualitySettings
from quality.services.gold import gold_clear, gold_set


class QualitySettingsInline(admin.StackedInline):
    model = QualitySettings
    can_delete = False
    extra = 0
    max_num = 1
    fields = (
        "aggregation_method",
        "adjudication_threshold",
        "adjudicate_ties",
        "show_overruled",
        "aggregated_at",
    )
    readonly_fields = ("aggregated_at",)
    verbose_name = "quality (agreement, aggregation, adjudication)"


ProjectAdmin.inlines = (*ProjectAdmin.inlines, QualitySettingsInline)


@admin.action(description="Mark as gold (their current final labels are the answers)")
def mark_gold_from_final(modeladmin, request, queryset):
    rows = list(queryset.values_list("project_id", "external_id", "final_labels"))
    missing = [external_id for _, external_id, final in rows if not final]
    if missing:
        modeladmin.message_user(
            request,
            f"{len(missing)} selected item(s) have no final label to use as the gold answer "
            f"(e.g. {', '.join(missing[:5])}); nothing was changed. Adjudicate them first, or "
            "import a gold file.",
            messages.ERROR,
        )
        return
    by_project: dict[int, list] = {}
    for project_id, external_id, final in rows:
        by_project.setdefault(project_id, []).append((external_id, final))
    from labeling.models import Project

    marked = 0
    try:
        for project in Project.objects.filter(pk__in=list(by_project)):
            marked += gold_set(project=project, entries=by_project[project.pk])
    except ApplicationError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    modeladmin.message_user(request, f"Marked {marked} item(s) as gold.", messages.SUCCESS)


@admin.action(description="Unmark gold")
def unmark_gold(modeladmin, request, queryset):
    from labeling.models import Project

    cleared = 0
    ids_by_project: dict[int, list[int]] = {}
    for project_id, pk in queryset.filter(is_gold=True).values_list("project_id", "pk"):
        ids_by_project.setdefault(project_id, []).append(pk)
    for project in Project.objects.filter(pk__in=list(ids_by_project)):
        cleared += gold_clear(project=project, item_ids=ids_by_project[project.pk])
    modeladmin.message_user(request, f"Unmarked {cleared} gold item(s).", messages.SUCCESS)


mark_gold_from_final.allowed_permissions = ("change",)
unmark_gold.allowed_permissions = ("change",)
ItemAdmin.actions = (*ItemAdmin.actions, mark_gold_from_final, unmark_gold)
ItemAdmin.list_filter = (*ItemAdmin.list_filter, "is_gold")


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "item", "labels", "reason", "reviewer", "created_at")
    list_filter = ("project", "reason")
    list_select_related = ("project", "item", "reviewer")
    readonly_fields = [f.name for f in Adjudication._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnnotatorReliability)
class AnnotatorReliabilityAdmin(admin.ModelAdmin):
    list_display = ("project", "annotator", "method", "reliability", "n_annotations", "updated_at")
    list_filter = ("project", "method")
    list_select_related = ("project", "annotator")
    readonly_fields = [f.name for f in AnnotatorReliability._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

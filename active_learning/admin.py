"""Admin: the project's query-strategy settings (inline on the project) and mined errors."""

from __future__ import annotations

from django.contrib import admin

from active_learning.models import ActiveLearningSettings, MinedError
from labeling.admin import ProjectAdmin


class ActiveLearningSettingsInline(admin.StackedInline):
    model = ActiveLearningSettings
    can_delete = False
    extra = 0


ProjectAdmin.inlines = (*ProjectAdmin.inlines, ActiveLearningSettingsInline)


@admin.register(MinedError)
class MinedErrorAdmin(admin.ModelAdmin):
    list_display = ("item", "project", "model_version", "predicted", "human", "confidence")
    list_filter = ("project",)
    readonly_fields = [f.name for f in MinedError._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

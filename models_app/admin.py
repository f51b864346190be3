"""Admin: per-project model settings (inline on the project), model versions with promote and
roll-back actions, and a read-only view of the embedding store."""

from __future__ import annotations

from django.contrib import admin, messages

from labeling.admin import ProjectAdmin
from labeling.errors import ApplicationError
from models_app.models import Embedding, ModelSettings, ModelVersion
from models_app.services.versions import model_version_promote, model_version_rollback


class ModelSettingsInline(admin.StackedInline):
    model = ModelSettings
    can_delete = False
    extra = 0
    fields = (
        "classifier",
        "classifier_params",
        "seed",
        "retrain_every",
        "min_labels",
        "holdout_fraction",
        "promote_tolerance",
    )


ProjectAdmin.inlines = (*ProjectAdmin.inlines, ModelSettingsInline)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "project",
        "number",
        "status",
        "label_count",
        "train_size",
        "holdout_size",
        "macro_f1",
        "created_at",
        "promoted_at",
    )
    list_filter = ("status", "project")
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ("promote", "roll_back")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="macro-F1")
    def macro_f1(self, obj: ModelVersion):
        value = obj.metrics.get("macro_f1")
        return None if value is None else round(value, 4)

    @admin.action(description="Promote the selected version (make it active)")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        try:
            version = model_version_promote(version=queryset.get(), user=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{version} is active; the queue is being re-scored.")

    @admin.action(description="Roll back the project of the selected version")
    def roll_back(self, request, queryset):
        for project in {v.project for v in queryset}:
            try:
                version = model_version_rollback(project=project, user=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{project}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{project}: back to v{version.number}.")


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ("content_hash", "model_name", "dim", "created_at")
    list_filter = ("model_name",)
    search_fields = ("content_hash",)
    fields = ("content_hash", "model_name", "dim", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

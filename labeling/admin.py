"""Django admin for every labeling model.

The admin is an interface like the API: writes that have rules go through services (members,
re-opening items, exports). History and lineage are shown, never edited: annotations change only
through the annotation services (which append AnnotationEvents and keep counters and final labels
right), AnnotationEvent is append-only, predictions and jobs are records of what happened.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from labeling.errors import ApplicationError
from labeling.models import (
    Annotation,
    AnnotationEvent,
    Assignment,
    Item,
    Job,
    Label,
    Membership,
    Prediction,
    Project,
    QueueEntry,
)
from labeling.services.exports import export_content_type, export_filename, export_stream
from labeling.services.items import item_reopen, project_overlap_apply, project_overlap_preview
from labeling.services.projects import label_set_version_bump, membership_set


def _count_per_project(queryset, **filters) -> Coalesce:
    """A per-project count as a correlated subquery: joining items and memberships in one
    GROUP BY would multiply the rows (items x members) for every project listed."""
    counted = (
        queryset.filter(project=OuterRef("pk"), **filters)
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- Projects ---------------------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record that only services write: listed and shown, never added, changed or deleted
    by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0
    fields = ("value", "description", "color", "shortcut", "order")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)


class AddMembersForm(forms.Form):
    users = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        widget=FilteredSelectMultiple("users", is_stacked=False),
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)


class ProjectAdminForm(forms.ModelForm):
    """The project form, with the confirmation a change of k or of the overlap share needs
    when it would re-open finished items and clear their final labels."""

    confirm_overlap_change = forms.BooleanField(
        required=False,
        label="Confirm clearing final labels",
        help_text="Needed only when a change of annotations per item or of the overlap share "
        "would re-open finished items and clear their final labels; the form says how many.",
    )

    class Meta:
        model = Project
        fields = "__all__"  # noqa: DJ007 (the admin lists the project's fields itself)

    def clean(self):
        cleaned = super().clean()
        project = self.instance
        fields = [f for f in ("annotations_per_item", "overlap_fraction") if f in self.changed_data]
        if project.pk is None or not fields or cleaned.get("confirm_overlap_change"):
            return cleaned
        if cleaned.get("annotations_per_item") is None or cleaned.get("overlap_fraction") is None:
            return cleaned  # the field's own error is shown
        preview = project_overlap_preview(
            project=project,
            annotations_per_item=cleaned["annotations_per_item"],
            overlap_fraction=cleaned["overlap_fraction"],
        )
        if preview.clears_labels:
            raise forms.ValidationError(
                f"This change would clear final labels: {preview.describe()} Tick "
                "“Confirm clearing final labels” and save again to apply it.",
                code="confirm_overlap_change",
            )
        return cleaned


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = (
        "name",
        "multi_label",
        "annotations_per_item",
        "item_count",
        "done_count",
        "member_count",
        "created_by",
        "created_at",
    )
    list_select_related = ("created_by",)
    list_filter = ("multi_label", "annotations_per_item", "created_at")
    search_fields = ("name", "description")
    readonly_fields = ("created_by", "created_at", "updated_at")
    inlines = (LabelInline, MembershipInline)
    actions = ("add_members",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                item_count=_count_per_project(Item.objects),
                done_count=_count_per_project(Item.objects, status=Item.Status.DONE),
                member_count=_count_per_project(Membership.objects),
            )
        )

    @admin.display(description="items", ordering="item_count")
    def item_count(self, obj: Project) -> int:
        return obj.item_count

    @admin.display(description="finished", ordering="done_count")
    def done_count(self, obj: Project) -> int:
        return obj.done_count

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: Project) -> int:
        return obj.member_count

    def save_formset(self, request, form, formset, change: bool) -> None:
        """A label's value or description changed here: bump the label-set version (the lineage
        of zero-shot suggestions) and recompute them, as the API does."""
        super().save_formset(request, form, formset, change)
        if formset.model is not Label or not change:
            return
        touched = any(
            {"value", "description"} & set(f.changed_data) for f in formset.forms if f.instance.pk
        ) or bool(formset.new_objects or formset.deleted_objects)
        if touched:
            label_set_version_bump(project=form.instance)

    def save_model(self, request, obj: Project, form, change: bool) -> None:
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if change and {"annotations_per_item", "overlap_fraction"} & set(form.changed_data):
            result = project_overlap_apply(project=obj)
            self.message_user(
                request,
                f"Overlap applied: {result.with_k:,} items want {obj.annotations_per_item} "
                f"annotations, {result.with_one:,} want one; {result.reopened:,} re-opened, "
                f"{result.closed:,} closed.",
            )

    @admin.action(description="Add members to selected projects", permissions=["change"])
    def add_members(self, request, queryset):
        if "apply" in request.POST:
            form = AddMembersForm(request.POST)
            if form.is_valid():
                users = list(form.cleaned_data["users"])
                role = form.cleaned_data["role"]
                projects = list(queryset)
                try:
                    for project in projects:
                        membership_set(project=project, users=users, role=role)
                except ApplicationError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                    return None
                self.message_user(
                    request,
                    f"{len(users)} user(s) are now {role}s of {len(projects)} project(s).",
                    messages.SUCCESS,
                )
                return None  # back to the changelist
        else:
            form = AddMembersForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Add members",
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
            "projects": queryset,
            "selected_ids": queryset.values_list("pk", flat=True),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/labeling/project/add_members.html", context)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ("value", "project", "color_swatch", "shortcut", "order")
    list_select_related = ("project",)
    list_filter = ("project",)
    search_fields = ("value", "project__name")

    @admin.display(description="color", ordering="color")
    def color_swatch(self, obj: Label) -> str:
        return format_html(
            '<span style="display:inline-block;width:1em;height:1em;background:{}"></span> {}',
            obj.color,
            obj.color,
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "project", "role", "created_at")
    list_select_related = ("user", "project")
    list_filter = ("role", "project")
    search_fields = ("user__username", "user__email", "project__name")
    autocomplete_fields = ("user", "project")
    readonly_fields = ("created_at", "updated_at")


# --- Items ------------------------------------------------------------------------------------


class AnnotationInline(ReadOnlyInline):
    model = Annotation
    fields = ("annotator", "labels", "time_spent_ms", "suggestion", "created_at", "updated_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("annotator", "suggestion")


class PredictionInline(ReadOnlyInline):
    model = Prediction
    fields = ("source_kind", "source_id", "source_version", "labels", "confidence", "created_at")
    readonly_fields = fields


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "project",
        "external_id",
        "short_text",
        "status",
        "annotation_count",
        "annotations_wanted",
        "is_gold",
        "priority",
        "updated_at",
    )
    list_select_related = ("project",)
    list_filter = ("project", "status", "is_gold")
    search_fields = ("external_id", "text")
    # Counting a million items for "N total" on every page is not worth a second query.
    show_full_result_count = False
    # Items come from imports (which hash and validate them); their label state from the
    # annotation services and aggregation. Only the queue rank and metadata are edited here.
    fields = (
        "project",
        "external_id",
        "text",
        "metadata",
        "priority",
        "status",
        "annotation_count",
        "annotations_wanted",
        "is_gold",
        "gold_labels",
        "final_labels",
        "final_confidence",
        "final_lineage",
        "content_hash",
        "import_job",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(f for f in fields if f not in {"metadata", "priority"})
    inlines = (AnnotationInline, PredictionInline)
    actions = ("reopen_items", "export_jsonl")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="text")
    def short_text(self, obj: Item) -> str:
        return Truncator(obj.text).chars(80)

    @admin.action(description="Re-open selected items", permissions=["change"])
    def reopen_items(self, request, queryset):
        result = item_reopen(item_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Re-opened {result.reopened} item(s).", messages.SUCCESS)
        if result.already_full:
            self.message_user(
                request,
                f"{result.already_full} of them already have as many annotations as their "
                "project asks for, so the queue serves them again only after the project's "
                "annotations per item is raised.",
                messages.WARNING,
            )

    @admin.action(description="Export selected as JSONL", permissions=["view"])
    def export_jsonl(self, request, queryset):
        project_ids = list(queryset.order_by().values_list("project_id", flat=True).distinct()[:2])
        if len(project_ids) != 1:
            self.message_user(
                request, "Select items from a single project to export them.", messages.ERROR
            )
            return None
        project = Project.objects.get(pk=project_ids[0])
        stream = export_stream(
            project=project, fmt="jsonl", item_ids=queryset.values_list("pk", flat=True)
        )
        response = StreamingHttpResponse(stream, content_type=export_content_type(fmt="jsonl"))
        filename = export_filename(project=project, fmt="jsonl")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# --- Annotations and their history -----------------------------------------------------------


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    """View only: a change made here would skip the event history, the item's counter and
    its final label, which the annotation services keep in step."""

    list_display = (
        "id",
        "item",
        "project",
        "annotator",
        "labels",
        "time_spent_ms",
        "suggestion",
        "created_at",
        "updated_at",
    )
    list_select_related = ("item", "project", "annotator", "suggestion")
    list_filter = ("project", "created_at")
    search_fields = ("item__external_id", "annotator__username")
    readonly_fields = (
        "item",
        "project",
        "annotator",
        "labels",
        "time_spent_ms",
        "suggestion",
        "created_at",
        "updated_at",
    )
    show_full_result_count = False


@admin.register(AnnotationEvent)
class AnnotationEventAdmin(ReadOnlyAdmin):
    """Append-only history: nobody adds, changes or deletes events by hand."""

    list_display = (
        "created_at",
        "action",
        "annotation_id_ref",
        "item",
        "annotator",
        "labels",
        "previous_labels",
        "time_spent_ms",
    )
    list_select_related = ("item", "annotator")
    list_filter = ("action", "created_at")
    search_fields = ("item__external_id", "annotator__username", "=annotation_id_ref")
    show_full_result_count = False


# --- Queue, predictions, jobs -----------------------------------------------------------------


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    """Queue leases. Editable: status and expiry (e.g. to free a stuck lease)."""

    list_display = ("id", "item", "project", "user", "status", "is_live", "leased_at", "expires_at")
    list_select_related = ("item", "project", "user")
    list_filter = ("status", "project")
    search_fields = ("user__username", "item__external_id")
    readonly_fields = ("item", "project", "user", "leased_at", "updated_at")
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(boolean=True, description="live lease")
    def is_live(self, obj: Assignment) -> bool:
        return obj.status == Assignment.Status.LEASED and obj.expires_at > timezone.now()


@admin.register(QueueEntry)
class QueueEntryAdmin(ReadOnlyAdmin):
    """The queue in serving order, read-only: database triggers keep it from the items (an
    item's priority and status are edited on the item)."""

    list_display = ("item", "project", "priority")
    list_select_related = ("item", "project")
    list_filter = ("project",)
    search_fields = ("item__external_id",)
    ordering = ("project", "-priority", "item")
    show_full_result_count = False


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    """Machine labels with their lineage (which source, which version): read-only."""

    list_display = (
        "id",
        "item",
        "project",
        "source_kind",
        "source_id",
        "source_version",
        "labels",
        "confidence",
        "created_at",
    )
    list_select_related = ("item", "project")
    list_filter = ("source_kind", "project")
    search_fields = ("source_id", "item__external_id")
    readonly_fields = (
        "item",
        "project",
        "source_kind",
        "source_id",
        "source_version",
        "labels",
        "confidence",
        "scores",
        "details",
        "created_at",
    )
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Background work as the workers report it: read-only."""

    list_display = (
        "id",
        "kind",
        "project",
        "status",
        "progress",
        "message",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_select_related = ("project",)
    list_filter = ("kind", "status", "project")
    search_fields = ("message", "error")
    readonly_fields = (
        "project",
        "kind",
        "status",
        "progress",
        "progress_done",
        "progress_total",
        "message",
        "error",
        "params",
        "cursor",
        "result",
        "attempts",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="progress")
    def progress(self, obj: Job) -> str:
        if obj.status == Job.Status.PENDING:
            return "waiting for a worker"
        percent = obj.percent
        if percent is None:
            return f"{obj.progress_done:,}" if obj.progress_done else "—"
        return format_html(
            '<progress value="{}" max="100" title="{} of {}"></progress> {}%',
            percent,
            obj.progress_done,
            obj.progress_total,
            percent,
        )

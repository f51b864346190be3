"""Admin for the pre-label pipeline: per-project settings as an inline of the Project admin
(the API key is write-only), labeling functions created and edited through the services (so
validation and versions are the same as in the UI and API), and read-only records."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from labeling.admin import ProjectAdmin
from labeling.errors import ApplicationError
from weak_supervision.models import (
    CascadeDecision,
    LabelingFunction,
    LabelModelRun,
    LLMPrompt,
    LLMResponse,
    WeakSupervisionSettings,
)
from weak_supervision.services.apply import apply_job_create
from weak_supervision.services.lfs import lf_config_validate, lf_create, lf_update
from weak_supervision.services.settings import (
    llm_base_url_validate,
    ws_llm_api_key_set,
    ws_settings_update,
)


class SettingsForm(forms.ModelForm):
    """Validated by the settings service (allowed endpoints) and saved through it (the key is
    encrypted, bound to its endpoint and cleared when the endpoint changes)."""

    llm_api_key = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave empty to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")

    class Meta:
        model = WeakSupervisionSettings
        fields = (
            "label_model_method",
            "label_model_uses_llm",
            "llm_enabled",
            "llm_base_url",
            "llm_model",
            "llm_concurrency",
            "llm_budget_usd",
            "llm_price_input_per_mtok",
            "llm_price_output_per_mtok",
            "llm_few_shot",
            "cascade_enabled",
            "cascade_source",
            "cascade_threshold",
            "cascade_verify_fraction",
            "cascade_min_accuracy",
            "cascade_min_checks",
            "cascade_max_odds_ratio",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = bool(self.instance and self.instance.pk and ws_llm_api_key_set(row=self.instance))
        self.fields["llm_api_key"].help_text = (
            "A key is stored (never shown). " if stored else "No key stored. "
        ) + "Leave empty to keep it; it is cleared when the endpoint changes."

    def clean_llm_base_url(self):
        try:
            return llm_base_url_validate(self.cleaned_data.get("llm_base_url"))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None

    def settings_changes(self) -> dict:
        data = self.cleaned_data
        changes = {name: data[name] for name in SettingsForm.Meta.fields if name in data}
        return {
            **changes,
            "llm_api_key": data.get("llm_api_key") or None,
            "llm_api_key_clear": bool(data.get("clear_api_key")),
        }


class SettingsFormSet(forms.BaseInlineFormSet):
    """Rows are written by `ws_settings_update`, never by the ModelForm itself."""

    def _save_through_service(self, form):
        return ws_settings_update(project=self.instance, **form.settings_changes())

    def save_new(self, form, commit=True):
        return self._save_through_service(form)

    def save_existing(self, form, obj, commit=True):
        return self._save_through_service(form)


class WeakSupervisionSettingsInline(admin.StackedInline):
    model = WeakSupervisionSettings
    form = SettingsForm
    formset = SettingsFormSet
    can_delete = False
    extra = 0
    max_num = 1
    verbose_name = "pre-label settings"
    fieldsets = (
        ("Label model", {"fields": ("label_model_method", "label_model_uses_llm")}),
        (
            "LLM pre-labels",
            {
                "fields": (
                    "llm_enabled",
                    "llm_base_url",
                    "llm_model",
                    "llm_api_key",
                    "clear_api_key",
                    "llm_concurrency",
                    "llm_budget_usd",
                    "llm_price_input_per_mtok",
                    "llm_price_output_per_mtok",
                    "llm_few_shot",
                )
            },
        ),
        (
            "Cascade",
            {
                "fields": (
                    "cascade_enabled",
                    "cascade_source",
                    "cascade_threshold",
                    "cascade_verify_fraction",
                    "cascade_min_accuracy",
                    "cascade_min_checks",
                    "cascade_max_odds_ratio",
                )
            },
        ),
    )


ProjectAdmin.inlines = (*ProjectAdmin.inlines, WeakSupervisionSettingsInline)


class LabelingFunctionForm(forms.ModelForm):
    """Friendly fields that become the function's canonical ``config``."""

    label = forms.CharField(required=False, help_text="Label it votes (keyword, regex).")
    keywords = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line or comma-separated.",
    )
    pattern = forms.CharField(required=False, help_text="Regular expression (Python syntax).")
    case_sensitive = forms.BooleanField(required=False)
    whole_word = forms.BooleanField(required=False, initial=True)
    threshold = forms.FloatField(required=False, help_text="Classifier: minimum confidence.")
    source_id = forms.CharField(required=False, help_text="Classifier: model id (empty: newest).")
    function = forms.CharField(required=False, help_text="Python: registered function name.")

    class Meta:
        model = LabelingFunction
        fields = ("project", "name", "description", "kind", "active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.instance.config if self.instance and self.instance.pk else {}
        for name in ("label", "pattern", "case_sensitive", "threshold", "source_id", "function"):
            if name in config and config[name] is not None:
                self.fields[name].initial = config[name]
        if "keywords" in config:
            self.fields["keywords"].initial = "\n".join(config["keywords"])
        if "whole_word" in config:
            self.fields["whole_word"].initial = config["whole_word"]
        if self.instance and self.instance.pk:
            self.fields["project"].disabled = True

    def build_config(self) -> dict:
        data = self.cleaned_data
        kind = data.get("kind")
        if kind == "keyword":
            return {
                "label": data.get("label"),
                "keywords": data.get("keywords") or "",
                "case_sensitive": data.get("case_sensitive"),
                "whole_word": data.get("whole_word"),
            }
        if kind == "regex":
            return {
                "label": data.get("label"),
                "pattern": data.get("pattern") or "",
                "case_sensitive": data.get("case_sensitive"),
            }
        if kind == "classifier":
            threshold = data.get("threshold")
            return {
                "label": data.get("label") or None,
                "threshold": 0.9 if threshold is None else threshold,
                "source_id": data.get("source_id") or "",
            }
        return {"function": data.get("function") or ""}

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is None or not data.get("kind"):
            return data
        try:
            data["config"] = lf_config_validate(
                project=project, kind=data["kind"], config=self.build_config()
            )
        except ApplicationError as exc:
            field = exc.extra.get("field")
            self.add_error(field if field in self.fields else None, exc.message)
        return data


@admin.register(LabelingFunction)
class LabelingFunctionAdmin(admin.ModelAdmin):
    form = LabelingFunctionForm
    list_display = ("name", "project", "kind", "version", "active", "applied_version", "applied_at")
    list_filter = ("project", "kind", "active")
    search_fields = ("name", "description", "project__name")
    readonly_fields = (
        "config",
        "version",
        "applied_version",
        "applied_at",
        "applied_stats",
        "stopped_version",
        "stopped_reason",
    )
    actions = ("apply_selected",)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = lf_update(
                lf=obj,
                name=data["name"],
                kind=data["kind"],
                config=data["config"],
                description=data.get("description", ""),
                active=data.get("active", True),
            )
        else:
            saved = lf_create(
                project=data["project"],
                name=data["name"],
                kind=data["kind"],
                config=data["config"],
                description=data.get("description", ""),
                active=data.get("active", True),
                created_by=request.user,
            )
        form.instance = saved
        obj.pk = saved.pk

    @admin.action(description="Apply selected functions to every item (job)")
    def apply_selected(self, request, queryset):
        by_project: dict = {}
        for lf in queryset:
            by_project.setdefault(lf.project, []).append(lf.pk)
        for project, ids in by_project.items():
            try:
                job = apply_job_create(project=project, lf_ids=ids, user=request.user)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                continue
            self.message_user(request, f"Job #{job.pk} queued for {project}.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LabelModelRun)
class LabelModelRunAdmin(ReadOnlyAdmin):
    list_display = ("project", "method", "version", "items", "covered", "created_at")
    list_filter = ("project", "method")


@admin.register(LLMPrompt)
class LLMPromptAdmin(ReadOnlyAdmin):
    list_display = ("project", "version", "fingerprint", "created_at")
    list_filter = ("project",)


@admin.register(LLMResponse)
class LLMResponseAdmin(ReadOnlyAdmin):
    list_display = ("project", "model", "status", "label", "confidence", "cost_usd", "created_at")
    list_filter = ("project", "status", "model")


@admin.register(CascadeDecision)
class CascadeDecisionAdmin(ReadOnlyAdmin):
    list_display = ("item", "project", "labels", "confidence", "source_kind", "verify")
    list_filter = ("project", "source_kind", "verify")
    raw_id_fields = ("item",)

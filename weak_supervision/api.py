"""REST API of the pre-label pipeline (mounted under /api/). Reviewers read, managers write;
non-members get 404 (see `labeling.api.permissions`)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from labeling.api.converters import MAX_ID, MIN_ID
from labeling.api.permissions import NOT_FOUND, project_for_role
from labeling.api.views.base import ApiView
from labeling.api.views.jobs import JobSerializer
from labeling.models import Membership
from weak_supervision import selectors
from weak_supervision.label_models import METHODS
from weak_supervision.models import CascadeRun, LabelingFunction, WeakSupervisionSettings
from weak_supervision.services.apply import apply_job_create
from weak_supervision.services.cascade import cascade_job_create, cascade_run_undo
from weak_supervision.services.common import ws_settings_for
from weak_supervision.services.label_model import label_model_job_create
from weak_supervision.services.lfs import lf_create, lf_delete, lf_try_sample, lf_update
from weak_supervision.services.llm import SCOPES, llm_job_create
from weak_supervision.services.settings import ws_llm_api_key_set, ws_settings_update

Role = Membership.Role
TAGS = ["pre-labels"]


class LFSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.ChoiceField(choices=LabelingFunction.Kind.choices)
    config = serializers.JSONField()
    version = serializers.IntegerField()
    active = serializers.BooleanField()
    applied_version = serializers.CharField()
    applied_at = serializers.DateTimeField(allow_null=True)
    applied_stats = serializers.JSONField()
    stopped_version = serializers.CharField(
        help_text="Version stopped for timeouts: applying the stale functions skips it until "
        "it changes (empty: not stopped)."
    )
    stopped_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _lf(*, project, lf_id: int) -> LabelingFunction:
    lf = LabelingFunction.objects.filter(project=project, pk=lf_id).first()
    if lf is None:
        raise NotFound(NOT_FOUND)
    return lf


class LFListApi(ApiView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        kind = serializers.ChoiceField(choices=LabelingFunction.Kind.choices)
        config = serializers.JSONField(
            help_text='keyword: {"label", "keywords": [...], "case_sensitive", "whole_word"}; '
            'regex: {"label", "pattern", "case_sensitive"}; classifier: {"label"?, '
            '"threshold", "source_id"?}; python: {"function"}'
        )
        description = serializers.CharField(required=False, allow_blank=True, default="")
        active = serializers.BooleanField(required=False, default=True)

    @extend_schema(responses=LFSerializer(many=True), operation_id="lf_list", tags=TAGS)
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        lfs = LabelingFunction.objects.filter(project=project).order_by("id")
        return Response(LFSerializer(lfs, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: LFSerializer},
        operation_id="lf_create",
        summary="Create a labeling function",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lf = lf_create(project=project, created_by=request.user, **data.validated_data)
        return Response(LFSerializer(lf).data, status=status.HTTP_201_CREATED)


class LFDetailApi(ApiView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        kind = serializers.ChoiceField(choices=LabelingFunction.Kind.choices, required=False)
        config = serializers.JSONField(required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        active = serializers.BooleanField(required=False)

    @extend_schema(responses=LFSerializer, operation_id="lf_retrieve", tags=TAGS)
    def get(self, request, pid: int, lfid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(LFSerializer(_lf(project=project, lf_id=lfid)).data)

    @extend_schema(
        request=InputSerializer,
        responses=LFSerializer,
        operation_id="lf_update",
        summary="Edit a labeling function (a new specification bumps its version)",
        tags=TAGS,
    )
    def patch(self, request, pid: int, lfid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lf = lf_update(lf=_lf(project=project, lf_id=lfid), **data.validated_data)
        return Response(LFSerializer(lf).data)

    @extend_schema(responses={204: None}, operation_id="lf_delete", tags=TAGS)
    def delete(self, request, pid: int, lfid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        lf_delete(lf=_lf(project=project, lf_id=lfid))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LFTryApi(ApiView):
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=LabelingFunction.Kind.choices)
        config = serializers.JSONField()
        seed = serializers.IntegerField(
            required=False,
            min_value=0,
            help_text="Which random sample (default 0: the same sample every time).",
        )

    class OutputSerializer(serializers.Serializer):
        class RowSerializer(serializers.Serializer):
            item_id = serializers.IntegerField()
            text = serializers.CharField()
            vote = serializers.CharField(allow_null=True)
            human_label = serializers.CharField(allow_null=True)

        config = serializers.JSONField()
        sample_size = serializers.IntegerField(help_text="Items in the sample.")
        population = serializers.IntegerField(help_text="Items it was drawn from (all).")
        seed = serializers.IntegerField()
        votes = serializers.IntegerField()
        coverage = serializers.FloatField(help_text="Estimate of the applied coverage.")
        coverage_low = serializers.FloatField(allow_null=True, help_text="95% Wilson interval.")
        coverage_high = serializers.FloatField(allow_null=True)
        errors = serializers.IntegerField(help_text="Items on which a Python function raised.")
        accuracy = serializers.FloatField(allow_null=True)
        judged = serializers.IntegerField()
        error = serializers.CharField()
        stats = serializers.JSONField()
        rows = RowSerializer(many=True)

    @extend_schema(
        request=InputSerializer,
        responses=OutputSerializer,
        operation_id="lf_try",
        summary="Votes of a (possibly unsaved) function on a uniform random sample of items",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = lf_try_sample(project=project, **data.validated_data)
        return Response(self.OutputSerializer(result).data)


class LFApplyApi(ApiView):
    class InputSerializer(serializers.Serializer):
        lf_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=MIN_ID, max_value=MAX_ID),
            max_length=1000,
            required=False,
            help_text="Functions to (re-)run; empty: every function whose votes are stale.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={202: JobSerializer},
        operation_id="lf_apply",
        summary="Apply labeling functions to every item (job)",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = apply_job_create(
            project=project, lf_ids=data.validated_data.get("lf_ids") or None, user=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class LFAnalysisApi(ApiView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="lf_analysis",
        summary="Coverage, overlap, conflict, polarity and accuracy per function",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(selectors.lf_analysis(project=project))


class LabelModelRunApi(ApiView):
    class InputSerializer(serializers.Serializer):
        method = serializers.ChoiceField(choices=sorted(METHODS), required=False)

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="label_model_retrieve",
        summary="The current label model run",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(selectors.label_model_report(project=project))

    @extend_schema(
        request=InputSerializer,
        responses={202: JobSerializer},
        operation_id="label_model_run",
        summary="Fit the label model and store its pre-labels (job)",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = label_model_job_create(
            project=project, method=data.validated_data.get("method"), user=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class LLMRunApi(ApiView):
    class InputSerializer(serializers.Serializer):
        scope = serializers.ChoiceField(choices=SCOPES, required=False, default="unlabeled")
        limit = serializers.IntegerField(required=False, allow_null=True, min_value=1)
        eval_sample = serializers.IntegerField(required=False, default=100, min_value=0)

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="llm_report",
        summary="LLM usage, cost and accuracy per class against human labels",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(selectors.llm_report(project=project))

    @extend_schema(
        request=InputSerializer,
        responses={202: JobSerializer},
        operation_id="llm_run",
        summary="LLM pre-labels (job)",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = llm_job_create(project=project, user=request.user, **data.validated_data)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class CascadeRunApi(ApiView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="cascade_report",
        summary="What settled each item; precision of auto-acceptance",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(selectors.cascade_report(project=project))

    class InputSerializer(serializers.Serializer):
        accept_unverified = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Auto-accept from a source that has too few gold or human-labelled items "
            "to be checked on (it must pass the other checks).",
        )

    @extend_schema(
        request=InputSerializer,
        responses={202: JobSerializer},
        operation_id="cascade_run",
        summary="Auto-accept confident pre-labels now (job); refused sources write nothing",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = cascade_job_create(
            project=project,
            user=request.user,
            accept_unverified=data.validated_data["accept_unverified"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class CascadeRunListApi(ApiView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="cascade_run_list",
        summary="The latest cascade runs: the gate's verdict per source, what was accepted, undo",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        return Response(selectors.cascade_runs(project=project))


class CascadeRunUndoApi(ApiView):
    @extend_schema(
        request=None,
        responses=OpenApiTypes.OBJECT,
        operation_id="cascade_run_undo",
        summary="Undo a cascade run: its items get back their state from before it",
        tags=TAGS,
    )
    def post(self, request, pid: int, rid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        try:
            run = cascade_run_undo(project=project, run_id=rid, user=request.user)
        except CascadeRun.DoesNotExist:
            raise NotFound(NOT_FOUND) from None
        return Response(selectors.cascade_run_detail(run=run))


class SettingsSerializer(serializers.ModelSerializer):
    """The API key is write-only: reads say whether one is set, never what it is. The endpoint
    must be one the operator allows (400 naming ``llm_base_url`` otherwise)."""

    llm_api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="Write-only; empty keeps the stored key. Cleared when the endpoint changes.",
    )
    llm_api_key_clear = serializers.BooleanField(
        write_only=True, required=False, default=False, help_text="Remove the stored key."
    )
    llm_api_key_set = serializers.SerializerMethodField()

    class Meta:
        model = WeakSupervisionSettings
        fields = [
            "label_model_method",
            "label_model_uses_llm",
            "llm_enabled",
            "llm_base_url",
            "llm_api_key",
            "llm_api_key_clear",
            "llm_api_key_set",
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
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def get_llm_api_key_set(self, obj) -> bool:
        return ws_llm_api_key_set(row=obj)


class SettingsApi(ApiView):
    @extend_schema(responses=SettingsSerializer, operation_id="prelabel_settings", tags=TAGS)
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        return Response(SettingsSerializer(ws_settings_for(project=project)).data)

    @extend_schema(
        request=SettingsSerializer,
        responses=SettingsSerializer,
        operation_id="prelabel_settings_update",
        summary="Change pre-label settings (an empty llm_api_key keeps the stored one)",
        tags=TAGS,
    )
    def patch(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        # No instance: a refused change must not even create the default row.
        data = SettingsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        row = ws_settings_update(project=project, **data.validated_data)
        return Response(SettingsSerializer(row).data)


class DashboardApi(ApiView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="prelabel_dashboard",
        summary="Everything the pre-label dashboard shows",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(selectors.dashboard(project=project))

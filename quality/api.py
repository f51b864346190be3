"""REST API of the quality app: agreement report, settings, aggregation, adjudication, gold,
overruled answers, crowd-label import, training labels. One APIView per operation."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from labeling.api.converters import MAX_ID, MIN_ID
from labeling.api.pagination import PAGE_PARAMETERS, paginated_response, paginated_schema
from labeling.api.permissions import item_in_project, project_for_role
from labeling.api.views.base import ApiView
from labeling.api.views.jobs import JobSerializer
from labeling.errors import ApplicationError, NotPermitted
from labeling.models import Membership
from labeling.services.imports import upload_size_check, upload_too_large_refuse
from quality.models import AggregationMethod
from quality.selectors import (
    adjudication_item_detail,
    adjudication_queue,
    agreement_report,
    overruled_for_user,
    training_labels,
)
from quality.services.adjudication import adjudication_decide, adjudication_revoke
from quality.services.aggregation import aggregation_request
from quality.services.crowd_import import crowd_import_job_create
from quality.services.gold import gold_clear, gold_file_import, gold_set
from quality.services.settings import quality_settings_get, quality_settings_update

Role = Membership.Role
CAP = "QUALITY_MAX_UPLOAD_BYTES"  # gold and crowd files are read whole
TAGS = ["quality"]


class QualityReportApi(ApiView):
    @extend_schema(
        responses=OpenApiResponse(description="The agreement report (see docs/quality.md)."),
        operation_id="quality_report",
        summary="Agreement per project, label and annotator (reviewer+)",
        description="Every figure comes as {value, n}: n is the number of items (pairs for "
        "Cohen's kappa means) it rests on; value is null when undefined. Cached briefly.",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(agreement_report(project=project))


class QualitySettingsApi(ApiView):
    class SettingsSerializer(serializers.Serializer):
        aggregation_method = serializers.ChoiceField(
            choices=AggregationMethod.choices, required=False
        )
        adjudication_threshold = serializers.FloatField(
            required=False, min_value=0.0, max_value=1.0
        )
        adjudicate_ties = serializers.BooleanField(required=False)
        show_overruled = serializers.BooleanField(required=False)

    @extend_schema(
        responses=SettingsSerializer,
        operation_id="quality_settings_retrieve",
        summary="Quality settings (reviewer+)",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(self.SettingsSerializer(quality_settings_get(project=project)).data)

    @extend_schema(
        request=SettingsSerializer,
        responses=SettingsSerializer,
        operation_id="quality_settings_update",
        summary="Change quality settings (manager)",
        description="Changing the method, threshold or tie handling re-aggregates the project.",
        tags=TAGS,
    )
    def patch(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.SettingsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        row = quality_settings_update(project=project, **data.validated_data)
        return Response(self.SettingsSerializer(row).data)


class AggregateApi(ApiView):
    @extend_schema(
        request=None,
        responses={202: JobSerializer},
        operation_id="quality_aggregate",
        summary="Re-aggregate final labels now (manager)",
        description="Queues an aggregation job (or returns the one already queued).",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        job = aggregation_request(project=project, delay=0, user=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class QueueItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    text = serializers.CharField()
    annotation_count = serializers.IntegerField()
    final_confidence = serializers.FloatField(allow_null=True)
    reason = serializers.CharField(source="final_lineage.reason", allow_null=True, default=None)
    proposed = serializers.ListField(
        source="final_lineage.proposed",
        child=serializers.CharField(),
        allow_null=True,
        default=None,
    )
    method = serializers.CharField(source="final_lineage.method", allow_null=True, default=None)


class AdjudicationQueueApi(ApiView):
    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses=paginated_schema(QueueItemSerializer, "PaginatedAdjudicationQueue"),
        operation_id="adjudication_queue",
        summary="Items waiting for adjudication (reviewer+)",
        description="Ties and low-confidence results, lowest confidence first.",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return paginated_response(
            queryset=adjudication_queue(project=project),
            serializer_class=QueueItemSerializer,
            request=request,
            view=self,
        )


class DecisionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reviewer = serializers.CharField(source="reviewer.get_username")
    labels = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField()
    reason = serializers.CharField()
    proposed_labels = serializers.JSONField()
    proposed_confidence = serializers.FloatField(allow_null=True)
    annotation_ids = serializers.ListField(child=serializers.IntegerField())
    created_at = serializers.DateTimeField()
    superseded_at = serializers.DateTimeField(allow_null=True)


class AdjudicationItemApi(ApiView):
    class OutputSerializer(serializers.Serializer):
        class AnnotationSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            annotator = serializers.CharField()
            labels = serializers.ListField(child=serializers.CharField())
            created_at = serializers.DateTimeField()
            reliability = serializers.FloatField(
                allow_null=True, help_text="Estimated accuracy from the latest aggregation."
            )
            reliability_method = serializers.CharField(allow_null=True)
            reliability_n = serializers.IntegerField(allow_null=True)

        item = QueueItemSerializer()
        final_labels = serializers.ListField(
            source="item.final_labels", child=serializers.CharField(), allow_null=True
        )
        annotations = AnnotationSerializer(many=True)
        proposed = serializers.ListField(child=serializers.CharField(), allow_null=True)
        confidence = serializers.FloatField(allow_null=True)
        reason = serializers.CharField(allow_null=True)
        needs_adjudication = serializers.BooleanField()
        decisions = DecisionSerializer(many=True)

    class InputSerializer(serializers.Serializer):
        labels = serializers.ListField(child=serializers.CharField(max_length=100), max_length=1000)
        note = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")

    @extend_schema(
        responses=OutputSerializer,
        operation_id="adjudication_item",
        summary="An item with every annotation and each annotator's reliability (reviewer+)",
        tags=TAGS,
    )
    def get(self, request, pid: int, iid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        item = item_in_project(project=project, item_id=iid)
        if item.final_lineage is None:
            item.final_lineage = {}
        return Response(
            self.OutputSerializer(adjudication_item_detail(project=project, item=item)).data
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: DecisionSerializer},
        operation_id="adjudication_decide",
        summary="Choose the item's final label (reviewer+)",
        description="The decision wins over aggregation and survives re-aggregation; deciding "
        "again supersedes the earlier decision (both are kept).",
        tags=TAGS,
    )
    def post(self, request, pid: int, iid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        item = item_in_project(project=project, item_id=iid)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = adjudication_decide(
            project=project, item_id=item.pk, reviewer=request.user, **data.validated_data
        )
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


class AdjudicationRevokeApi(ApiView):
    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Withdrawn; aggregation takes over.")},
        operation_id="adjudication_revoke",
        summary="Withdraw the decision on an item (reviewer+)",
        tags=TAGS,
    )
    def post(self, request, pid: int, iid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        item = item_in_project(project=project, item_id=iid)
        adjudication_revoke(project=project, item_id=item.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OverruledApi(ApiView):
    class OutputSerializer(serializers.Serializer):
        annotation_id = serializers.IntegerField()
        item_id = serializers.IntegerField()
        external_id = serializers.CharField()
        text = serializers.CharField()
        your_labels = serializers.ListField(child=serializers.CharField())
        final_labels = serializers.ListField(child=serializers.CharField())
        method = serializers.CharField()
        decided_by_reviewer = serializers.BooleanField()
        annotated_at = serializers.DateTimeField()

    @extend_schema(
        responses=OutputSerializer(many=True),
        operation_id="overruled_list",
        summary="Where my answers were overruled (annotator+, if the project opted in)",
        description="Only settled items, never gold items. 403 when the project keeps this off.",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        if not quality_settings_get(project=project).show_overruled:
            raise NotPermitted(
                "This project does not show annotators where they were overruled.",
                {"setting": "show_overruled"},
            )
        rows = overruled_for_user(project=project, user=request.user)[:1000]
        return Response(self.OutputSerializer(rows, many=True).data)


class GoldSetApi(ApiView):
    class InputSerializer(serializers.Serializer):
        class EntrySerializer(serializers.Serializer):
            external_id = serializers.CharField(max_length=255)
            labels = serializers.ListField(child=serializers.CharField(max_length=100))

        items = EntrySerializer(many=True, max_length=100_000)

    @extend_schema(
        request=InputSerializer,
        responses={200: OpenApiResponse(description='{"marked": n}')},
        operation_id="gold_set",
        summary="Mark items as gold with their known labels (manager)",
        description="All or nothing; errors name the entry (from 1).",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entries = [(e["external_id"], e["labels"]) for e in data.validated_data["items"]]
        return Response({"marked": gold_set(project=project, entries=entries)})


class GoldClearApi(ApiView):
    class InputSerializer(serializers.Serializer):
        item_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=MIN_ID, max_value=MAX_ID), max_length=100_000
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: OpenApiResponse(description='{"cleared": n}')},
        operation_id="gold_clear",
        summary="Unmark gold items (manager)",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            {"cleared": gold_clear(project=project, item_ids=data.validated_data["item_ids"])}
        )


class GoldImportApi(ApiView):
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="CSV with external_id,label (labels joined by |).")
        id_column = serializers.CharField(required=False, default="external_id")
        label_column = serializers.CharField(required=False, default="label")

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={200: OpenApiResponse(description='{"marked": n}')},
        operation_id="gold_import",
        summary="Import a gold file (manager)",
        description="All or nothing; errors name the line.",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        upload_too_large_refuse(content_length=request.META.get("CONTENT_LENGTH"), setting=CAP)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload_size_check(uploaded_file=data.validated_data["file"], setting=CAP)
        try:
            content = data.validated_data["file"].read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApplicationError("The gold file is not UTF-8 text.") from exc
        marked = gold_file_import(
            project=project,
            content=content,
            id_column=data.validated_data["id_column"],
            label_column=data.validated_data["label_column"],
        )
        return Response({"marked": marked})


class CrowdImportApi(ApiView):
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="CSV or JSONL rows of item, annotator, label.")
        item_column = serializers.CharField(required=False, default="item")
        worker_column = serializers.CharField(required=False, default="worker")
        label_column = serializers.CharField(required=False, default="label")
        format = serializers.ChoiceField(choices=["csv", "jsonl"], required=False)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={202: JobSerializer},
        operation_id="crowd_import",
        summary="Import annotations from a crowd file (manager)",
        description="Items are matched by external id; annotators become inactive accounts "
        "named crowd.<id>. Runs as a job, all or nothing.",
        tags=TAGS,
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        upload_too_large_refuse(content_length=request.META.get("CONTENT_LENGTH"), setting=CAP)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload_size_check(uploaded_file=data.validated_data["file"], setting=CAP)
        options = {k: v for k, v in data.validated_data.items() if k != "file"}
        job = crowd_import_job_create(
            project=project,
            user=request.user,
            uploaded_file=data.validated_data["file"],
            options=options,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class TrainingLabelsApi(ApiView):
    class FilterSerializer(serializers.Serializer):
        weighted = serializers.BooleanField(required=False, default=False)
        include_machine = serializers.BooleanField(required=False, default=True)
        include_gold = serializers.BooleanField(required=False, default=True)

    class OutputSerializer(serializers.Serializer):
        item_ids = serializers.ListField(child=serializers.IntegerField())
        labels = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
        weights = serializers.ListField(child=serializers.FloatField())

    @extend_schema(
        parameters=[FilterSerializer],
        responses=OutputSerializer,
        operation_id="training_labels",
        summary="Final labels for training, optionally weighted by confidence (reviewer+)",
        description="Items awaiting adjudication (final_labels null) are left out.",
        tags=TAGS,
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        result = training_labels(project=project, **filters.validated_data)
        return Response(self.OutputSerializer(result).data)

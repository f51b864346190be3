"""REST API of the active-learning app: find similar items, mined errors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from active_learning.models import MinedError
from active_learning.services.mining import item_similar
from labeling.api.permissions import item_for_viewer, project_for_role
from labeling.api.views.base import ApiView
from labeling.models import Membership

Role = Membership.Role


class SimilarItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    text = serializers.CharField()
    similarity = serializers.FloatField()
    final_labels = serializers.ListField(
        child=serializers.CharField(),
        allow_null=True,
        help_text="null for annotators (it may aggregate other annotators' answers, or be a "
        "gold item's known answer).",
    )
    priority = serializers.FloatField(allow_null=True, help_text="null for annotators.")


class ItemSimilarApi(ApiView):
    class FilterSerializer(serializers.Serializer):
        k = serializers.IntegerField(min_value=1, max_value=100, default=10, required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=SimilarItemSerializer(many=True),
        operation_id="item_similar",
        summary="The item's nearest neighbours in embedding space",
        description="Reviewers and managers: any item. Annotators: items they hold or labeled, "
        "and the neighbours without their final labels or priority.",
        tags=["active learning"],
    )
    def get(self, request, pid: int, iid: int):
        project, role = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        item = item_for_viewer(project=project, role=role, user=request.user, item_id=iid)
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        pairs = item_similar(project=project, item=item, k=params.validated_data.get("k", 10))
        # Annotators label blind: no neighbour's final label (others' answers, a gold item's
        # known answer, a re-opened item's earlier label) and no priority (gold items differ).
        blind = role == Role.ANNOTATOR
        rows = [
            {
                "id": other.pk,
                "external_id": other.external_id,
                "text": other.text[:500],
                "similarity": round(similarity, 4),
                "final_labels": None if blind else other.final_labels,
                "priority": None if blind else other.priority,
            }
            for other, similarity in pairs
        ]
        return Response(SimilarItemSerializer(rows, many=True).data)


class MinedErrorSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    model_version = serializers.IntegerField()
    predicted = serializers.JSONField()
    human = serializers.JSONField()
    confidence = serializers.FloatField()
    neighbours = serializers.JSONField()
    created_at = serializers.DateTimeField()


class MinedErrorListApi(ApiView):
    @extend_schema(
        responses=MinedErrorSerializer(many=True),
        operation_id="mined_error_list",
        summary="Items whose human label contradicted a confident prediction (reviewer+)",
        tags=["active learning"],
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        rows = MinedError.objects.filter(project=project).order_by("-created_at")[:200]
        return Response(MinedErrorSerializer(rows, many=True).data)

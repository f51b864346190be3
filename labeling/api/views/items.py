"""Items: the paginated, filterable list and one item's detail (reviewers and up)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from labeling.api.pagination import PAGE_PARAMETERS, paginated_response, paginated_schema
from labeling.api.permissions import item_for_viewer, project_for_role
from labeling.api.selectors import item_list
from labeling.api.views.base import ApiView
from labeling.models import Item, Membership

Role = Membership.Role


class ItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    text = serializers.CharField()
    metadata = serializers.JSONField()
    status = serializers.ChoiceField(choices=Item.Status.choices, allow_null=True)
    priority = serializers.FloatField(allow_null=True)
    annotation_count = serializers.IntegerField(allow_null=True)
    final_labels = serializers.ListField(child=serializers.CharField(), allow_null=True)
    final_confidence = serializers.FloatField(allow_null=True)
    final_lineage = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(allow_null=True)


# What an annotator is not shown of an item (null in their answers). Final labels may
# aggregate other annotators' answers (and a re-opened item keeps its earlier one); a gold
# item's final label is its known answer; its status, annotation count, priority and last
# change tell gold items (answered by everyone, never closed) and others' work apart.
ANNOTATOR_HIDDEN_FIELDS = (
    "status",
    "priority",
    "annotation_count",
    "final_labels",
    "final_confidence",
    "final_lineage",
    "updated_at",
)


def item_payload(*, item: Item, role: str) -> dict:
    """`ItemSerializer`'s output for a caller with `role`: annotators get the hidden fields as
    null."""
    data = ItemSerializer(item).data
    if role == Role.ANNOTATOR:
        for name in ANNOTATOR_HIDDEN_FIELDS:
            data[name] = None
    return data


class ItemListApi(ApiView):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Item.Status.choices, required=False)
        search = serializers.CharField(required=False, max_length=200)
        external_id = serializers.CharField(required=False, max_length=255)

    @extend_schema(
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated_schema(ItemSerializer, "PaginatedItemList"),
        operation_id="item_list",
        summary="List items (reviewer+)",
        description="Highest priority first. `search` matches text and external id "
        "(case-insensitive substring); `external_id` matches exactly.",
        tags=["items"],
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = item_list(project=project, **filters.validated_data)
        return paginated_response(
            queryset=items, serializer_class=ItemSerializer, request=request, view=self
        )


class ItemDetailApi(ApiView):
    @extend_schema(
        responses=ItemSerializer,
        operation_id="item_retrieve",
        summary="One item",
        description="Reviewers and managers see any item of the project; annotators only an "
        "item they hold a live lease on or have annotated, and with `status`, `priority`, "
        "`annotation_count`, `final_*` and `updated_at` null (they could reveal other "
        "annotators' answers or a gold item).",
        tags=["items"],
    )
    def get(self, request, pid: int, iid: int):
        project, role = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        item = item_for_viewer(project=project, role=role, user=request.user, item_id=iid)
        return Response(item_payload(item=item, role=role))

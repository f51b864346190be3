"""Projects: the caller's list, one project's detail, its progress counts."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from labeling.api.permissions import project_for_role
from labeling.api.selectors import project_list_with_progress
from labeling.api.views.base import ApiView
from labeling.models import Membership, Project
from labeling.selectors import project_progress
from labeling.services.projects import project_settings_update
from labeling.templatetags.flywheel import markdown_to_safe_html

Role = Membership.Role


class ProjectProgressApi(ApiView):
    class OutputSerializer(serializers.Serializer):
        total = serializers.IntegerField()
        done = serializers.IntegerField()
        open = serializers.IntegerField()
        mine = serializers.IntegerField(help_text="Annotations by the caller.")

    @extend_schema(
        responses=OutputSerializer,
        operation_id="project_progress",
        summary="Progress counts",
        tags=["projects"],
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        progress = project_progress(project=project, user=request.user)
        return Response(self.OutputSerializer(progress).data)


class ProjectListApi(ApiView):
    class OutputSerializer(serializers.Serializer):
        class LabelSerializer(serializers.Serializer):
            value = serializers.CharField()
            color = serializers.CharField()
            shortcut = serializers.CharField()
            description = serializers.CharField(help_text="One line: what the label means.")
            order = serializers.IntegerField()

        id = serializers.IntegerField()
        name = serializers.CharField()
        description = serializers.CharField()
        multi_label = serializers.BooleanField()
        k = serializers.IntegerField(
            source="annotations_per_item", help_text="Annotations wanted per item."
        )
        labels = LabelSerializer(many=True)
        role = serializers.ChoiceField(choices=Role.choices, help_text="The caller's role.")
        progress = ProjectProgressApi.OutputSerializer()

    @extend_schema(
        responses=OutputSerializer(many=True),
        operation_id="project_list",
        summary="Projects I belong to",
        description="Every project for staff users (who act as managers everywhere).",
        tags=["projects"],
    )
    def get(self, request):
        projects = project_list_with_progress(user=request.user)
        return Response(self.OutputSerializer(projects, many=True).data)


class ProjectDetailApi(ApiView):
    class OutputSerializer(ProjectListApi.OutputSerializer):
        guidelines = serializers.CharField(help_text="Markdown source.")
        guidelines_html = serializers.SerializerMethodField(
            help_text="The guidelines rendered and sanitised, safe to insert as HTML."
        )
        lease_seconds = serializers.IntegerField()
        overlap_fraction = serializers.FloatField(
            help_text="Share of items that get k annotators; the others get one."
        )
        gold_rate = serializers.FloatField(help_text="Share of served items that are gold.")
        queue_order = serializers.ChoiceField(
            choices=Project.QueueOrder.choices, help_text="New items' order before any ranking."
        )
        show_external_id = serializers.BooleanField(
            help_text="Annotators see each item's external id on the labeling page."
        )
        label_set_version = serializers.IntegerField(
            help_text="Bumped when a label's description changes (zero-shot lineage)."
        )
        created_at = serializers.DateTimeField()

        def get_guidelines_html(self, project: Project) -> str:
            return markdown_to_safe_html(project.guidelines)

    @extend_schema(
        responses=OutputSerializer,
        operation_id="project_retrieve",
        summary="Project detail",
        tags=["projects"],
    )
    def get(self, request, pid: int):
        project, role = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        project.role = role
        project.progress = project_progress(project=project, user=request.user)
        return Response(self.OutputSerializer(project).data)

    class UpdateSerializer(serializers.Serializer):
        guidelines = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
        description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
        k = serializers.IntegerField(
            source="annotations_per_item", required=False, min_value=1, max_value=100
        )
        overlap_fraction = serializers.FloatField(required=False, min_value=0, max_value=1)
        gold_rate = serializers.FloatField(required=False, min_value=0, max_value=1)
        lease_seconds = serializers.IntegerField(required=False, min_value=1, max_value=86_400)
        queue_order = serializers.ChoiceField(choices=Project.QueueOrder.choices, required=False)
        show_external_id = serializers.BooleanField(required=False)
        label_descriptions = serializers.DictField(
            child=serializers.CharField(allow_blank=True, max_length=300),
            required=False,
            help_text='One line per label, e.g. {"sport": "matches, athletes, clubs"}; used by '
            "the zero-shot suggestions, which are recomputed.",
        )
        confirm = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Apply a change of k or the overlap share even though it clears final "
            "labels (without it such a change answers 409 with the counts).",
        )

    @extend_schema(
        request=UpdateSerializer,
        responses={200: OutputSerializer, 409: OpenApiTypes.OBJECT},
        operation_id="project_update",
        summary="Change queue settings (manager)",
        description="Changing k or the overlap share re-opens items that now need more "
        "annotations and closes those that have enough. A change that would clear final "
        "labels (items now short of their k) is refused with 409 and `{detail, field, "
        "items_reopened, items_closed, final_labels_cleared}`, writing nothing, unless the "
        'request says `"confirm": true`.',
        tags=["projects"],
    )
    def patch(self, request, pid: int):
        project, role = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        data = self.UpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        confirm = changes.pop("confirm", False)
        project = project_settings_update(project=project, confirm=confirm, **changes)
        project.role = role
        project.progress = project_progress(project=project, user=request.user)
        return Response(self.OutputSerializer(project).data)

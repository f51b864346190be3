"""REST API of the models app: model versions, retrain now, promote, roll back, embed."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from labeling.api.permissions import project_for_role
from labeling.api.views.base import ApiView
from labeling.api.views.jobs import JobSerializer
from labeling.models import Membership
from models_app.models import ModelVersion
from models_app.selectors import model_version_list
from models_app.services.embeddings import embeddings_schedule
from models_app.services.training import training_request
from models_app.services.versions import model_version_promote, model_version_rollback

Role = Membership.Role


class ModelVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices)
    classifier = serializers.CharField()
    params = serializers.JSONField()
    seed = serializers.IntegerField()
    embedding_model = serializers.CharField()
    train_size = serializers.IntegerField()
    holdout_size = serializers.IntegerField()
    holdout_source = serializers.CharField()
    label_count = serializers.IntegerField()
    metrics = serializers.JSONField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    promoted_at = serializers.DateTimeField(allow_null=True)


class ModelVersionListApi(ApiView):
    @extend_schema(
        responses=ModelVersionSerializer(many=True),
        operation_id="model_version_list",
        summary="A project's model versions with held-out metrics, newest first (reviewer+)",
        tags=["models"],
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.REVIEWER)
        return Response(ModelVersionSerializer(model_version_list(project=project), many=True).data)


class TrainApi(ApiView):
    class OutputSerializer(serializers.Serializer):
        started = serializers.BooleanField()
        job = JobSerializer(allow_null=True)

    @extend_schema(
        request=None,
        responses={202: OutputSerializer},
        operation_id="model_train",
        summary="Retrain now (manager)",
        description="Starts a training job, or, if one is running for the project, queues a "
        "retrain for when it ends (`started: false`).",
        tags=["models"],
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        job = training_request(project=project, reason="retrain now", user=request.user)
        data = {"started": job is not None, "job": JobSerializer(job).data if job else None}
        return Response(data, status=status.HTTP_202_ACCEPTED)


class EmbedApi(ApiView):
    @extend_schema(
        request=None,
        responses={202: JobSerializer},
        operation_id="model_embed",
        summary="Embed the project's texts not embedded yet (manager)",
        tags=["models"],
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        job = embeddings_schedule(project=project, user=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ModelVersionPromoteApi(ApiView):
    @extend_schema(
        request=None,
        responses={
            200: ModelVersionSerializer,
            400: OpenApiResponse(description="Already active."),
        },
        operation_id="model_version_promote",
        summary="Make a version the active model by hand (manager)",
        tags=["models"],
    )
    def post(self, request, pid: int, number: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        version = ModelVersion.objects.filter(project=project, number=number).first()
        if version is None:
            raise NotFound("Not found.")
        version = model_version_promote(version=version, user=request.user, reason="")
        return Response(ModelVersionSerializer(version).data)


class ModelVersionRollbackApi(ApiView):
    @extend_schema(
        request=None,
        responses={
            200: ModelVersionSerializer,
            400: OpenApiResponse(description="Nothing to roll back to."),
        },
        operation_id="model_version_rollback",
        summary="Re-activate the version that was active before the current one (manager)",
        tags=["models"],
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        version = model_version_rollback(project=project, user=request.user)
        return Response(ModelVersionSerializer(version).data)

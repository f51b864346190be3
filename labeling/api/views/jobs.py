"""Background jobs, and the two manager operations that deal in files: import and export."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from labeling.api.pagination import PAGE_PARAMETERS, paginated_response, paginated_schema
from labeling.api.permissions import job_for_member, project_for_role
from labeling.api.selectors import job_list
from labeling.api.views.base import ApiView
from labeling.importing import FORMATS as IMPORT_FORMATS
from labeling.job_visibility import REDACTED, job_details_visible
from labeling.jobtasks import job_dispatch, job_restart_refusal
from labeling.models import Job, Membership
from labeling.selectors import membership_role
from labeling.services.exports import (
    EXPORT_FORMATS,
    export_content_type,
    export_filename,
    export_stream,
    parse_changed_since,
)
from labeling.services.imports import import_job_create, upload_too_large_refuse
from labeling.services.jobs import JobSpeed, job_is_stuck, job_restart, job_speed

Role = Membership.Role

EXPORT_MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "json": "application/json",
}


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    status = serializers.ChoiceField(choices=Job.Status.choices)
    progress_done = serializers.IntegerField()
    progress_total = serializers.IntegerField(
        allow_null=True, help_text="null while the job does not know how much work there is."
    )
    percent = serializers.IntegerField(allow_null=True)
    items_per_second = serializers.SerializerMethodField(
        help_text="Running jobs: progress_done per second since started_at."
    )
    eta_seconds = serializers.SerializerMethodField(
        help_text="Running jobs with a known total: seconds left at that pace."
    )
    message = serializers.CharField()
    stuck = serializers.SerializerMethodField(
        help_text="Unfinished, and its worker has been silent for JOB_STALE_SECONDS: the "
        "recovery sweep queues it again within minutes, or a manager restarts it now."
    )
    error = serializers.CharField()
    result = serializers.JSONField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def _speed(self, job: Job) -> JobSpeed:
        return job_speed(
            status=job.status,
            done=job.progress_done,
            total=job.progress_total,
            started_at=job.started_at,
            now=timezone.now(),
        )

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_stuck(self, job: Job) -> bool:
        return job_is_stuck(job=job)

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_items_per_second(self, job: Job) -> float | None:
        return self._speed(job).items_per_second

    @extend_schema_field(OpenApiTypes.INT)
    def get_eta_seconds(self, job: Job) -> int | None:
        return self._speed(job).eta_seconds


class JobDetailApi(ApiView):
    @extend_schema(
        responses=JobSerializer,
        operation_id="job_retrieve",
        summary="One job's status and progress",
        description="Progress is visible to every member of the job's project; poll it for "
        "progress bars. The details (`message`, `error`, `result`: an import's or aggregation's "
        "report can quote labels, items and people) are the project managers' and, for a job "
        "they started, a reviewer's; anyone else gets them as '', '' and {}.",
        tags=["jobs"],
    )
    def get(self, request, jid: int):
        job = job_for_member(job_id=jid, user=request.user)
        data = JobSerializer(job).data
        role = membership_role(project=job.project, user=request.user) if job.project else None
        if not job_details_visible(job=job, user=request.user, role=role):
            data.update(REDACTED)
        return Response(data)


class JobRestartApi(ApiView):
    @extend_schema(
        request=None,
        responses={202: JobSerializer},
        operation_id="job_restart",
        summary="Restart a failed or stuck job (manager)",
        description="Queues the job again; it resumes from its last committed step. A job whose "
        "worker still reports (running, or pending for less than JOB_STALE_SECONDS), a "
        "succeeded or cancelled one, or one that cannot run again (an import whose file is "
        "gone; a training while another holds the project) is a 409. Silent jobs are also "
        "restarted by the recovery sweep within minutes.",
        tags=["jobs"],
    )
    def post(self, request, jid: int):
        job = job_for_member(job_id=jid, user=request.user)
        if job.project is not None:
            project_for_role(project_id=job.project_id, user=request.user, role=Role.MANAGER)
        job = job_restart(
            job=job, dispatch=job_dispatch, refusal=job_restart_refusal, user=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobListApi(ApiView):
    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Job.Kind.choices, required=False)

    @extend_schema(
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated_schema(JobSerializer, "PaginatedJobList"),
        operation_id="job_list",
        summary="A project's jobs, newest first (manager)",
        tags=["jobs"],
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        jobs = job_list(project=project, **filters.validated_data)
        return paginated_response(
            queryset=jobs, serializer_class=JobSerializer, request=request, view=self
        )


class ImportCreateApi(ApiView):
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="CSV, JSON Lines or a JSON array of objects.")
        format = serializers.ChoiceField(
            choices=IMPORT_FORMATS,
            required=False,
            allow_blank=True,
            help_text="Guessed from the file name if omitted.",
        )
        text_field = serializers.CharField(
            required=False, max_length=255, help_text='Column (or key) with the text; "text".'
        )
        id_field = serializers.CharField(
            required=False,
            max_length=255,
            help_text="Column with your ids; without one, ids are derived from the text.",
        )
        label_field = serializers.CharField(
            required=False,
            max_length=255,
            help_text="Column with existing labels, imported as suggestions.",
        )
        delimiter = serializers.CharField(
            required=False,
            min_length=1,
            max_length=1,
            trim_whitespace=False,
            help_text="CSV only: the column separator; guessed from the header line if omitted.",
        )
        label_delimiter = serializers.CharField(
            required=False,
            min_length=1,
            max_length=10,
            trim_whitespace=False,
            help_text='Separates several labels in one cell (default "|").',
        )
        skip_invalid = serializers.BooleanField(
            required=False, default=False, help_text="Skip bad rows instead of failing the job."
        )
        labels_are_final = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Also make the imported labels the items' final labels (items done).",
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={202: JobSerializer},
        operation_id="import_create",
        summary="Import items from a file (manager)",
        description="Stores the upload and queues an import job; poll `/api/jobs/{id}/`.",
        tags=["import / export"],
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        upload_too_large_refuse(content_length=request.META.get("CONTENT_LENGTH"))
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        mapping = {
            key: fields[name]
            for key, name in (
                ("text", "text_field"),
                ("id", "id_field"),
                ("label", "label_field"),
                ("delimiter", "delimiter"),
                ("label_delimiter", "label_delimiter"),
            )
            if fields.get(name)
        }
        job = import_job_create(
            project=project,
            user=request.user,
            uploaded_file=fields["file"],
            file_format=fields.get("format") or None,
            mapping=mapping or None,
            skip_invalid=fields["skip_invalid"],
            labels_are_final=fields["labels_are_final"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class _IgnoreFormatQueryParameter(DefaultContentNegotiation):
    """`?format=` names the export's file format here, not a DRF renderer; errors stay JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExportApi(ApiView):
    content_negotiation_class = _IgnoreFormatQueryParameter

    class FilterSerializer(serializers.Serializer):
        format = serializers.ChoiceField(
            choices=tuple(EXPORT_FORMATS), required=False, default="jsonl"
        )
        finished_only = serializers.BooleanField(
            required=False, default=False, help_text="Only finished items (status done)."
        )
        label = serializers.CharField(
            required=False, max_length=100, help_text="Only items whose final labels include it."
        )
        changed_since = serializers.CharField(
            required=False,
            max_length=64,
            help_text="ISO 8601 date or datetime: only items changed since then (incremental).",
        )
        csv_formula_escape = serializers.BooleanField(
            required=False,
            default=True,
            help_text="CSV only: put a ' before a cell that begins with =, +, -, @, a tab or a "
            "carriage return, so spreadsheets do not run it as a formula (on by default; "
            "0 for machine consumers that want the raw values).",
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses={
            (200, content_type.split(";")[0]): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The export in the requested format, UTF-8; see the export docs "
                "for the record layout.",
            )
            for content_type, _ in EXPORT_FORMATS.values()
        },
        operation_id="export",
        summary="Export items and labels (manager)",
        description="Streamed as it is read from the database, one chunk of items at a time: "
        "any size works and the download starts at once.",
        tags=["import / export"],
    )
    def get(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.MANAGER)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        options = dict(filters.validated_data)
        fmt = options.pop("format")
        if "changed_since" in options:
            options["changed_since"] = parse_changed_since(options["changed_since"])
        # Arguments are checked here (a bad one is a 400); the rows are read as the body streams.
        chunks = export_stream(project=project, fmt=fmt, **options)
        response = StreamingHttpResponse(chunks, content_type=export_content_type(fmt=fmt))
        response["Content-Disposition"] = content_disposition_header(
            True, export_filename(project=project, fmt=fmt)
        )
        response["X-Accel-Buffering"] = "no"  # ask a fronting nginx not to buffer either
        response["Cache-Control"] = "no-store"
        return response

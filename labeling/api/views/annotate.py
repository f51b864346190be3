"""The annotation loop for a custom front-end: next item, submit, skip, edit, undo."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from labeling.api.converters import MAX_ID, MIN_ID
from labeling.api.pagination import PAGE_PARAMETERS, paginated_response, paginated_schema
from labeling.api.permissions import annotation_for_author, item_in_project, project_for_role
from labeling.api.selectors import annotation_list, item_suggestions
from labeling.api.validation import InputValidator
from labeling.api.views.base import ApiView
from labeling.models import Annotation, Assignment, Membership, Prediction
from labeling.services.annotations import annotation_retract, annotation_submit, annotation_update
from labeling.services.queue import assignment_skip, queue_next_item

Role = Membership.Role


class AnnotationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    annotator = serializers.CharField(source="annotator.get_username")
    labels = serializers.ListField(child=serializers.CharField())
    time_spent_ms = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class NextItemSerializer(serializers.Serializer):
    """What an annotator is shown: the lease, the item and the machine's suggestions."""

    class AssignmentSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        expires_at = serializers.DateTimeField(help_text="Submit before this to keep the slot.")

    class ItemSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        external_id = serializers.CharField()
        text = serializers.CharField()
        metadata = serializers.JSONField()

    class SuggestionSerializer(serializers.Serializer):
        id = serializers.IntegerField(help_text="Pass as `suggestion_id` when accepting it.")
        source_kind = serializers.ChoiceField(choices=Prediction.SourceKind.choices)
        source_id = serializers.CharField()
        source_version = serializers.CharField()
        labels = serializers.ListField(child=serializers.CharField())
        confidence = serializers.FloatField(allow_null=True)
        source = serializers.SerializerMethodField(
            help_text="Where it comes from, in words: 'model v3, trained on 120 labels', "
            "'zero-shot', 'LLM <model>, prompt v2', 'label model (Dawid-Skene)', "
            "'labeling function <name>', 'imported'."
        )

        def get_source(self, prediction: Prediction) -> str:
            return suggestion_source(
                kind=prediction.source_kind,
                source_id=prediction.source_id,
                version=prediction.source_version,
                details=prediction.details,
            )

    assignment = AssignmentSerializer(source="*")
    item = ItemSerializer()
    suggestions = SuggestionSerializer(many=True)


# The two responses of the annotation loop are built directly: instantiating DRF serializers
# (which deep-copy their fields every time) cost more than the rest of the request. The
# serializers above still document them, and tests check that both give the same output.
_datetime = serializers.DateTimeField()

_LABEL_MODEL_METHODS = {
    "majority_vote": "majority vote",
    "dawid_skene": "Dawid-Skene",
    "dawid_skene_classic": "Dawid-Skene",
}


def suggestion_source(*, kind: str, source_id: str, version: str, details: object) -> str:
    """Where a suggestion comes from, in the annotator's words: "model v3, trained on 120
    labels", "zero-shot (label descriptions)", "LLM gpt-4o-mini, prompt v2", "label model
    (Dawid-Skene)", "labeling function <name>", "imported". Only the source's own facts:
    nothing about other annotators' answers or gold items."""
    facts = details if isinstance(details, dict) else {}
    if kind == Prediction.SourceKind.MODEL:
        words = f"model v{facts.get('model_version') or version}"
        trained_on = facts.get("train_size")
        if isinstance(trained_on, int) and not isinstance(trained_on, bool):
            words += f", trained on {trained_on} label{'' if trained_on == 1 else 's'}"
        return words
    if kind == Prediction.SourceKind.ZERO_SHOT:
        return "zero-shot (label descriptions)"
    if kind == Prediction.SourceKind.LLM:
        words = f"LLM {source_id}" if source_id else "LLM"
        prompt = facts.get("prompt_version")
        return f"{words}, prompt v{prompt}" if prompt else words
    if kind == Prediction.SourceKind.LABEL_MODEL:
        method = _LABEL_MODEL_METHODS.get(str(source_id))
        return f"label model ({method})" if method else "label model"
    if kind == Prediction.SourceKind.LABELING_FUNCTION:
        return f"labeling function {source_id}"
    if kind == Prediction.SourceKind.IMPORT:
        return "imported"
    return str(kind)


def next_item_payload(assignment: Assignment, *, show_external_id: bool) -> dict:
    """`NextItemSerializer`'s output for the assignment, with the item's suggestions. The
    external id is left empty unless the project shows it (`Project.show_external_id`): ids
    often carry the answer or mark a gold item ("sport/019", "gold-17")."""
    item = assignment.item
    return {
        "assignment": {
            "id": assignment.pk,
            "expires_at": _datetime.to_representation(assignment.expires_at),
        },
        "item": {
            "id": item.pk,
            "external_id": str(item.external_id) if show_external_id else "",
            "text": str(item.text),
            "metadata": item.metadata,
        },
        "suggestions": [
            {
                "id": p.pk,
                "source_kind": str(p.source_kind),
                "source_id": str(p.source_id),
                "source_version": str(p.source_version),
                "labels": [str(v) for v in p.labels],
                "confidence": None if p.confidence is None else float(p.confidence),
                "source": suggestion_source(
                    kind=p.source_kind,
                    source_id=p.source_id,
                    version=p.source_version,
                    details=p.details,
                ),
            }
            for p in item_suggestions(item=item)
        ],
    }


def annotation_payload(annotation: Annotation) -> dict:
    """`AnnotationSerializer`'s output."""
    return {
        "id": annotation.pk,
        "item": annotation.item_id,
        "annotator": annotation.annotator.get_username(),
        "labels": [str(v) for v in annotation.labels],
        "time_spent_ms": int(annotation.time_spent_ms),
        "created_at": _datetime.to_representation(annotation.created_at),
        "updated_at": _datetime.to_representation(annotation.updated_at),
    }


class ItemNextApi(ApiView):
    renderer_classes = [JSONRenderer]  # the annotation loop: no browsable-API negotiation

    class InputSerializer(serializers.Serializer):
        exclude = serializers.ListField(
            child=serializers.IntegerField(min_value=MIN_ID, max_value=MAX_ID),
            required=False,
            default=list,
            max_length=1000,
            help_text="Item ids not to return (e.g. the one on screen, to prefetch the next).",
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: NextItemSerializer,
            204: OpenApiResponse(description="Nothing left for you to annotate."),
        },
        operation_id="item_next",
        summary="Lease the next item (annotator+)",
        description="Returns the item you already hold a live lease on, if any (and it is not "
        "excluded), with a renewed expiry; otherwise leases the highest-priority item that "
        "still needs annotations and that you have not annotated or skipped.",
        tags=["annotate"],
    )
    def post(self, request, pid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        data = next_input.validate(request.data)
        assignment = queue_next_item(
            project=project, user=request.user, exclude_item_ids=data["exclude"]
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(next_item_payload(assignment, show_external_id=project.show_external_id))


class ItemSubmitApi(ApiView):
    renderer_classes = [JSONRenderer]

    class InputSerializer(serializers.Serializer):
        labels = serializers.ListField(
            child=serializers.CharField(max_length=100),
            max_length=1000,
            help_text="Label values; exactly one unless the project is multi-label.",
        )
        time_spent_ms = serializers.IntegerField(
            required=False, default=0, min_value=0, max_value=2**31 - 1
        )
        suggestion_id = serializers.IntegerField(
            min_value=MIN_ID,
            max_value=MAX_ID,
            required=False,
            allow_null=True,
            default=None,
            help_text="The suggestion the annotator accepted, if any.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: AnnotationSerializer,
            400: OpenApiResponse(description="Unknown label, or the wrong number of labels."),
            403: OpenApiResponse(
                description="The item was never handed to you (by `next/` or an undo), gold "
                "items included; editing your own earlier answer needs no new lease."
            ),
            409: OpenApiResponse(
                description="Your lease expired and other annotators have since completed the item."
            ),
        },
        operation_id="item_submit",
        summary="Submit labels for an item (annotator+)",
        description="Submitting again for the same item edits your earlier answer.",
        tags=["annotate"],
    )
    def post(self, request, pid: int, iid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        data = submit_input.validate(request.data)
        # The service locks the item and answers 404 if it is not in this project.
        annotation = annotation_submit(project=project, user=request.user, item_id=iid, **data)
        return Response(annotation_payload(annotation), status=status.HTTP_201_CREATED)


# The two loop views' validators, shared with labeling/api/fastpath.py.
next_input = InputValidator(ItemNextApi.InputSerializer)
submit_input = InputValidator(ItemSubmitApi.InputSerializer)


class ItemSkipApi(ApiView):
    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Skipped: not offered to you again.")},
        operation_id="item_skip",
        summary="Skip an item (annotator+)",
        tags=["annotate"],
    )
    def post(self, request, pid: int, iid: int):
        project, _ = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        item = item_in_project(project=project, item_id=iid)
        assignment_skip(project=project, user=request.user, item_id=item.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnnotationListApi(ApiView):
    class FilterSerializer(serializers.Serializer):
        mine = serializers.BooleanField(
            required=False, default=False, help_text="Only my annotations."
        )
        item = serializers.IntegerField(
            min_value=MIN_ID, max_value=MAX_ID, required=False, help_text="Only this item's."
        )

    @extend_schema(
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated_schema(AnnotationSerializer, "PaginatedAnnotationList"),
        operation_id="annotation_list",
        summary="List annotations",
        description="Newest first. Annotators always get only their own; reviewers and "
        "managers get everyone's unless `mine=1`.",
        tags=["annotations"],
    )
    def get(self, request, pid: int):
        project, role = project_for_role(project_id=pid, user=request.user, role=Role.ANNOTATOR)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        only_mine = filters.validated_data["mine"] or role == Role.ANNOTATOR
        annotations = annotation_list(
            project=project,
            annotator=request.user if only_mine else None,
            item_id=filters.validated_data.get("item"),
        )
        return paginated_response(
            queryset=annotations, serializer_class=AnnotationSerializer, request=request, view=self
        )


class AnnotationUpdateApi(ApiView):
    class InputSerializer(serializers.Serializer):
        labels = serializers.ListField(
            child=serializers.CharField(max_length=100),
            max_length=1000,
            required=False,
            help_text="The new labels; omitted: unchanged (only the time is added).",
        )
        time_spent_ms = serializers.IntegerField(
            required=False,
            default=0,
            min_value=0,
            max_value=2**31 - 1,
            help_text="Time spent on this edit; added to the annotation's total.",
        )

    @extend_schema(
        request=InputSerializer,
        responses=AnnotationSerializer,
        operation_id="annotation_update",
        summary="Edit my annotation",
        tags=["annotations"],
    )
    def patch(self, request, aid: int):
        annotation = annotation_for_author(annotation_id=aid, user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = annotation_update(
            annotation=annotation,
            user=request.user,
            labels=data.validated_data.get("labels", annotation.labels),
            time_spent_ms=data.validated_data["time_spent_ms"],
        )
        return Response(AnnotationSerializer(annotation).data)


class AnnotationRetractApi(ApiView):
    @extend_schema(
        request=None,
        responses=NextItemSerializer,
        operation_id="annotation_retract",
        summary="Undo my annotation",
        description="Deletes the annotation (its history is kept), reopens the item and leases "
        "it back to you; the response is shaped like `next/` for that item.",
        tags=["annotations"],
    )
    def post(self, request, aid: int):
        annotation = annotation_for_author(annotation_id=aid, user=request.user)
        assignment = annotation_retract(annotation=annotation, user=request.user)
        return Response(
            next_item_payload(assignment, show_external_id=annotation.project.show_external_id)
        )

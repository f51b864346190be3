"""Who may read what of a job.

A job's details (its message, error, result and parameters) can quote labels, items, people
and the operator's configuration: an import's row report, an aggregation's or a crowd import's
annotators, an LLM endpoint's status. Managers of the job's project read every job's details;
a reviewer reads those of jobs they started themselves; anyone else who may see the job at all
(any member: progress bars poll it) gets its progress only: id, kind, status, counts, speed and
times. Annotators never get details, even of a job recorded as theirs.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser

from labeling.models import Job, Membership

Role = Membership.Role

# What a progress-only reader gets in place of each detail.
REDACTED = {"message": "", "error": "", "result": {}}


def job_details_visible(*, job: Job, user: AbstractBaseUser, role: str | None) -> bool:
    """`role`: the user's role in the job's project (None for a job without a project, which
    only those who manage every project can reach)."""
    if job.project_id is None:
        return True
    if role == Role.MANAGER:
        return True
    return role == Role.REVIEWER and job.created_by_id is not None and job.created_by_id == user.pk


def job_list_for_viewer(*, jobs: Iterable[Job], user: AbstractBaseUser, role: str) -> list[Job]:
    """The jobs, each marked `details_visible` for the page that lists them: templates show a
    job's message, error and report only where it is True."""
    listed = list(jobs)
    for job in listed:
        job.details_visible = job_details_visible(job=job, user=user, role=role)
    return listed

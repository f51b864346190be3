"""The server-rendered pages: who may open them and what they show. The labeling loop itself
(keyboard, prefetch, undo) is exercised in a real browser by tests/e2e/test_browser_labeling.py."""

import pytest
from django.urls import reverse

from labeling.models import Job, Membership
from labeling.templatetags.flywheel import ink_for, markdown_to_safe_html
from tests.factories import AnnotationFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role

PROJECT_PAGES = ["labeling:project_detail", "labeling:label", "labeling:my_annotations"]
ALL_PROJECT_PAGES = [*PROJECT_PAGES, "labeling:import"]


def page(name, project):
    return reverse(name, kwargs={"project_id": project.pk})


@pytest.mark.parametrize("name", ALL_PROJECT_PAGES)
def test_project_pages_send_anonymous_visitors_to_the_login_form(client, project, name):
    # given an anonymous visitor
    # when they open a project page
    response = client.get(page(name, project))
    # then they are redirected to the login form, coming back here afterwards
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert "next=" in response.url


def test_project_list_requires_login(client):
    response = client.get(reverse("labeling:project_list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_login_form_logs_in_and_lands_on_my_projects(client, annotator, project):
    # given the login page renders its form
    form = client.get(reverse("login"))
    assert form.status_code == 200
    assert b'name="username"' in form.content
    # when the annotator posts their credentials
    response = client.post(
        reverse("login"), {"username": "ann", "password": "pw-secret-123"}, follow=True
    )
    # then they see their project list
    assert response.redirect_chain[-1][0] == reverse("labeling:project_list")
    assert project.name in response.content.decode()


def test_project_list_shows_only_my_projects_with_progress(client, project, annotator):
    # given a project the annotator belongs to (2 items, one annotated by them) and one they don't
    other = ProjectFactory(name="Secret project")
    item = ItemFactory(project=project)
    ItemFactory(project=project)
    AnnotationFactory(item=item, annotator=annotator)
    client.force_login(annotator)
    # when they open their project list
    html = client.get(reverse("labeling:project_list")).content.decode()
    # then only their project is listed, with a progress bar and their count
    assert project.name in html
    assert other.name not in html
    assert f'id="progress-{project.pk}"' in html
    assert "My annotations: 1" in html


@pytest.mark.parametrize("name", ALL_PROJECT_PAGES)
def test_non_members_get_404_on_every_project_page(client, project, name):
    # given a logged-in user who is not a member of the project
    outsider = UserFactory(username="outsider")
    client.force_login(outsider)
    # when they open one of its pages
    response = client.get(page(name, project))
    # then the project's existence is not disclosed
    assert response.status_code == 404


def test_missing_project_is_404(client, annotator):
    client.force_login(annotator)
    response = client.get(reverse("labeling:label", kwargs={"project_id": 999_999}))
    assert response.status_code == 404


@pytest.mark.parametrize("name", PROJECT_PAGES)
def test_annotators_can_open_the_pages_for_annotators(client, project, annotator, name):
    client.force_login(annotator)
    assert client.get(page(name, project)).status_code == 200


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_import_page_is_for_managers_only(client, project, role):
    # given a member below the manager role
    user = UserFactory(username=f"member-{role}")
    project.memberships.create(user=user, role=role)
    client.force_login(user)
    # when they open the import page
    response = client.get(page("labeling:import", project))
    # then it is forbidden, and their project page offers no import link
    assert response.status_code == 403
    detail = client.get(page("labeling:project_detail", project)).content.decode()
    assert page("labeling:import", project) not in detail


def test_managers_get_the_import_page_with_column_mapping(client, project, manager):
    client.force_login(manager)
    response = client.get(page("labeling:import", project))
    assert response.status_code == 200
    html = response.content.decode()
    for field in ("text_field", "id_field", "label_field", "skip_invalid"):
        assert f'name="{field}"' in html
    assert "js/import.js" in html


def test_staff_users_without_a_membership_see_no_project(client, project):
    staff = UserFactory(username="staff", is_staff=True)
    client.force_login(staff)
    assert client.get(page("labeling:import", project)).status_code == 404
    assert client.get(page("labeling:project_detail", project)).status_code == 404
    assert project.name not in client.get(reverse("labeling:project_list")).content.decode()


def test_superusers_are_managers_without_a_membership(client, project):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(page("labeling:import", project)).status_code == 200


def test_manager_project_page_shows_jobs_exports_and_links(client, project, manager):
    # given a running import and a failed one with a validation report
    Job.objects.create(
        project=project, kind=Job.Kind.IMPORT, status=Job.Status.RUNNING,
        progress_done=40, progress_total=100,
    )  # fmt: skip
    Job.objects.create(
        project=project,
        kind=Job.Kind.IMPORT,
        status=Job.Status.FAILED,
        error="3 rows are invalid.",
        result={"errors": [{"row": 7, "field": "text", "reason": "empty <b>text</b>"}]},
    )
    client.force_login(manager)
    # when the manager opens the project page
    html = client.get(page("labeling:project_detail", project)).content.decode()
    # then the jobs show progress, the failure shows its report (escaped), and links are there
    assert 'value="40"' in html
    assert "Validation report" in html
    assert "empty &lt;b&gt;text&lt;/b&gt;" in html
    for fmt in ("jsonl", "csv", "json"):
        assert f"/api/projects/{project.pk}/export/?format={fmt}" in html
    assert reverse("admin:index") in html
    assert reverse("api-docs") in html


def test_annotator_project_page_hides_manager_sections(client, project, annotator):
    client.force_login(annotator)
    html = client.get(page("labeling:project_detail", project)).content.decode()
    assert "/export/" not in html
    assert "Recent jobs" not in html


def test_guidelines_are_rendered_from_markdown_and_sanitised(client, project, annotator):
    # given guidelines with Markdown, a script, an event handler and a javascript: link
    project.guidelines = (
        "Pick the **best** label.\n\n"
        "<script>alert('pwned')</script>\n\n"
        '<img src=x onerror="alert(1)">\n\n'
        "[click](javascript:alert(2)) and [docs](https://example.org/guide)"
    )
    project.save()
    client.force_login(annotator)
    # when the labeling page is rendered
    html = client.get(page("labeling:label", project)).content.decode()
    # then the Markdown is HTML, and nothing executable survives
    assert "<strong>best</strong>" in html
    assert "alert('pwned')" not in html
    assert "onerror" not in html
    assert "javascript:alert" not in html
    assert '<a href="https://example.org/guide" rel="noopener noreferrer">docs</a>' in html
    assert "<details" in html


def test_item_text_never_reaches_the_page_as_markup(client, project, annotator):
    # given an annotation on an item whose text contains markup
    item = ItemFactory(project=project, text="<script>alert('x')</script> hello")
    AnnotationFactory(item=item, annotator=annotator)
    client.force_login(annotator)
    # when the annotator lists their annotations
    html = client.get(page("labeling:my_annotations", project)).content.decode()
    # then the text is escaped
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; hello" in html
    assert "<script>alert('x')</script>" not in html


def test_labeling_page_has_label_buttons_with_keys_and_undo_history(client, project, annotator):
    # given one earlier annotation by this annotator
    item = ItemFactory(project=project)
    annotation = AnnotationFactory(item=item, annotator=annotator, labels=["neg"])
    client.force_login(annotator)
    # when the labeling page is rendered
    response = client.get(page("labeling:label", project))
    html = response.content.decode()
    # then every label is a button showing its key, and the page can undo the earlier answer
    for value, key in (("pos", "1"), ("neg", "2"), ("neutral", "3")):
        assert f'data-value="{value}" data-shortcut="{key}"' in html
    assert 'aria-live="polite"' in html
    assert response.context["config"]["history"] == [
        {"annotationId": annotation.pk, "itemId": item.pk, "labels": ["neg"]}
    ]
    assert 'My annotations: <strong id="my-count">1</strong>' in html


def test_my_annotations_lists_only_mine_with_edit_forms(client, project, annotator):
    # given my annotation and someone else's
    mine = AnnotationFactory(item=ItemFactory(project=project, text="my item"), annotator=annotator)
    other_user = UserFactory(username="someone")
    project.memberships.create(user=other_user, role=Role.ANNOTATOR)
    AnnotationFactory(item=ItemFactory(project=project, text="their item"), annotator=other_user)
    client.force_login(annotator)
    # when I open my annotations
    html = client.get(page("labeling:my_annotations", project)).content.decode()
    # then only mine is listed, with a form to edit it
    assert "my item" in html
    assert "their item" not in html
    assert f'data-annotation-id="{mine.pk}"' in html


def test_every_asset_is_served_from_our_static_files(client, project, manager):
    # given the pages a manager can open
    client.force_login(manager)
    for name in ALL_PROJECT_PAGES:
        html = client.get(page(name, project)).content.decode()
        # then no script or stylesheet comes from another origin
        assert "https://" not in html.split("<main", 1)[0]
        assert 'src="http' not in html
        assert 'href="http' not in html.split("guidelines-body", 1)[0]


def test_ink_colour_keeps_label_text_readable():
    assert ink_for("#1f1f1f") == "#ffffff"
    assert ink_for("#eeca3b") == "#000000"
    assert ink_for("not-a-colour") == "#000000"


def test_markdown_of_empty_guidelines_is_empty():
    assert markdown_to_safe_html("") == ""

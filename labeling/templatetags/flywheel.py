"""Template filters for the web UI: project guidelines rendered from Markdown and sanitised,
and a readable ink colour for label buttons coloured with `Label.color`."""

from __future__ import annotations

import re

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Markdown's own output plus what authors commonly write by hand. No images (they fetch from
# anywhere), no forms, no scripts or styles, no event handler attributes: nh3 drops all of it.
_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "mark", "ol", "p", "pre", "s",
    "small", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
}
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def markdown_to_safe_html(text: str) -> str:
    """Markdown to HTML that is safe to embed in a page: raw HTML in the source is sanitised
    (scripts, event handlers and javascript: URLs are removed), links open normally and carry
    rel="noopener noreferrer"."""
    if not text:
        return ""
    html = markdown_lib.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    # Safe to mark: nh3 has removed everything that is not on the allow-list above.
    return mark_safe(markdown_to_safe_html(text or ""))


@register.filter
def ink_for(color: str | None) -> str:
    """Black or white, whichever reads better on `color` (#rrggbb), by WCAG relative luminance."""
    if not color or not _HEX_COLOR.match(color):
        return "#000000"
    channels = []
    for i in (1, 3, 5):
        c = int(color[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
    # Contrast against white is (1.05)/(L+0.05), against black (L+0.05)/0.05; pick the larger.
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


@register.filter
def safe_color(color: str | None) -> str:
    """The label colour if it is a valid #rrggbb, else the default; used inside style=""."""
    return color if color and _HEX_COLOR.match(color) else "#4c78a8"


@register.filter
def job_stuck(job) -> bool:
    """An unfinished job whose worker has been silent for JOB_STALE_SECONDS (a manager may
    restart it; the recovery sweep will too)."""
    from labeling.services.jobs import job_is_stuck

    return job_is_stuck(job=job)

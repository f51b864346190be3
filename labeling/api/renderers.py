"""DRF's HTML view of the API under the site's Content-Security-Policy."""

from __future__ import annotations

from rest_framework import renderers


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's templates carry inline styles (Pygments' <style> for code, a few style attributes)
    that are not ours to move: for these pages only, the policy also allows inline styles.
    Scripts stay 'self' only; every other page allows no inline style either."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response._csp_update = {"style-src": ["'unsafe-inline'"]}
        return super().render(data, accepted_media_type, renderer_context)

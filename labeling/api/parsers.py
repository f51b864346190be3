"""DRF's JSON parser, refusing JSON nested too deeply with a 400 instead of a 500.

The json module's scanner recurses once per nesting level and raises RecursionError (not
ValueError, which DRF turns into a 400) somewhere near a thousand levels: ``[[[[...]]]]`` a few
kilobytes long was enough for a 500.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the JSON is nested too deeply.") from None

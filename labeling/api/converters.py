"""Path converter for database ids: ``<id:pid>`` in every urls.py.

Django's ``<int:...>`` takes any number of digits, and the database then refuses an id beyond
its 64-bit integer (PostgreSQL: "out of range for type bigint", SQLite: OverflowError), a 500.
``<id:...>`` matches at most 19 digits and no value above 2⁶³ - 1, so a larger id is simply
no such page: a 404. Importing this module registers it (once: modules are imported once).

`MAX_ID` and `MIN_ID` bound the id fields of request bodies and query strings too.
"""

from __future__ import annotations

from django.urls import register_converter

MAX_ID = 2**63 - 1  # PostgreSQL bigint, SQLite INTEGER
MIN_ID = -(2**63)


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError("id out of range")  # Django: no match, 404
        return number

    def to_url(self, value: int | str) -> str:
        return str(int(value))


register_converter(IdConverter, "id")

"""What an HTML report links to and which anchors it defines (for the report tests)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class Links(HTMLParser):
    """``ids``: every element id; ``refs``: every ``src`` and ``href`` in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("src", "href"):
            if attrs.get(key):
                self.refs.append(attrs[key])


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text())
    return links

"""A minimal HTML tree for tests: find elements by tag, class or id, read their text."""

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "link", "input", "br", "img", "hr", "source"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list["Element | str"] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    def all(self, tag: str | None = None, cls: str | None = None) -> list["Element"]:
        found = []
        for child in self.children:
            if isinstance(child, Element):
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    found.append(child)
                found.extend(child.all(tag, cls))
        return found

    def one(self, tag: str | None = None, cls: str | None = None) -> "Element":
        found = self.all(tag, cls)
        assert len(found) == 1, f"expected one {tag}.{cls}, got {len(found)}"
        return found[0]

    def by_id(self, ident: str) -> "Element":
        found = [e for e in self.all() if e.attrs.get("id") == ident]
        assert len(found) == 1, f"expected one #{ident}, got {len(found)}"
        return found[0]

    def table(self) -> list[dict[str, str]]:
        """This table's body rows as header -> cell text."""
        header = [th.text for th in self.one("thead").all("th")]
        return [dict(zip(header, [c.text for c in tr.children if isinstance(c, Element)],
                         strict=True)) for tr in self.one("tbody").all("tr")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Element("document", {})
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(element)
        if tag not in VOID:
            self._stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root

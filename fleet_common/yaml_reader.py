"""Reading a config file as YAML: one document, bounded in size, depth and count.

The event stream is checked before anything is built: a file may hold at most MAX_NODES
values, counting an alias as everything it stands for, so a "billion laughs" alias bomb
(300 bytes that expand to 400 million values) is refused at once, while the anchors and
aliases `yaml.safe_dump` writes for shared values still work. Nesting is bounded so neither
the YAML composer nor a validator recurses deep; tags are refused, as a config has no use
for them and they are a way to reach converters that fail.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import ScalarNode

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 200_000
_MAX_INT = 2**63
_MAX_INT_TEXT = 80  # longer integer text is out of range anyway; converting it may be slow
# What YAML allows in a stream (PyYAML's Reader check), so both loaders agree.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.@<-]{1,64}$")
_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: faster


class YamlProblem(Exception):
    """Why a file is refused; `path` is the key path at fault, when there is one."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(message)


def _bounded_int(loader: SafeConstructor, node: ScalarNode) -> int:
    text = str(node.value)
    if len(text.replace("_", "")) <= _MAX_INT_TEXT:
        try:
            value = SafeConstructor.construct_yaml_int(loader, node)
        except ValueError:
            pass
        else:
            if -_MAX_INT < value < _MAX_INT:
                return int(value)
    raise ConstructorError(None, None, "integer out of range", node.start_mark)


class _Loader(_BASE):  # type: ignore[misc]
    """The safe loader, with timestamps left as text and integers bounded."""


# A config has no dates; as text they never fail to convert (2001-13-45).
_Loader.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


@dataclass(slots=True)
class _Frame:
    """An open mapping or sequence while the event stream is checked."""

    path: str
    is_mapping: bool
    anchor: str | None
    start: int  # values counted before this one
    index: int = 0
    key: str | None = None  # mapping: the key whose value comes next, None while awaiting one
    keys: set[str] = field(default_factory=set)
    height: int = 1  # levels of collections, this one included


@dataclass(frozen=True, slots=True)
class _Anchored:
    size: int  # values, the anchored one included, aliases expanded
    height: int  # levels of collections; 0 for a scalar


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _join(path: str, key: str) -> str:
    shown = key if _PLAIN_KEY.match(key) else repr(key[:64])
    return f"{path}.{shown}" if path else shown


def _child_path(stack: list[_Frame]) -> str:
    if not stack:
        return ""
    top = stack[-1]
    return _join(top.path, top.key or "") if top.is_mapping else f"{top.path}[{top.index}]"


def _value_done(stack: list[_Frame], height: int) -> None:
    if stack:
        top = stack[-1]
        top.height = max(top.height, height + 1)
        if top.is_mapping:
            top.key = None
        else:
            top.index += 1


def _refuse_tags(event: Any, path: str) -> None:
    tag = getattr(event, "tag", None)
    if tag is not None:
        shown = str(tag).replace("tag:yaml.org,2002:", "!!")[:40]
        raise YamlProblem(path, f"YAML tags ({shown}) are not allowed, at "
                          f"{_where(event.start_mark)}; quote a value to make it text")


class _Checker:
    """Walks the events without building anything; raises YamlProblem at the first excess."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.nodes = 0
        self.documents = 0

    def count(self, size: int, event: Any) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise YamlProblem("", f"{self.name} holds more than {MAX_NODES} values, counting "
                              f"each use of an alias (at {_where(event.start_mark)}); "
                              "a config is far smaller")

    def run(self, loader: Any) -> None:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise YamlProblem("", f"{self.name} holds more than one YAML document "
                                      f"(another starts at {_where(event.start_mark)}); "
                                      "a config is one")
            elif isinstance(event, yaml.CollectionEndEvent):
                frame = self.stack.pop()
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = _Anchored(self.nodes - frame.start, frame.height)
                _value_done(self.stack, frame.height)
            elif isinstance(event, yaml.NodeEvent):
                top = self.stack[-1] if self.stack else None
                if top is not None and top.is_mapping and top.key is None:
                    self.key(event, top)
                else:
                    self.value(event, _child_path(self.stack))

    def value(self, event: Any, path: str) -> None:
        _refuse_tags(event, path)
        if isinstance(event, yaml.AliasEvent):
            if any(frame.anchor == event.anchor for frame in self.stack):
                raise YamlProblem(path, "an alias inside its own anchor makes an endless "
                                  f"value, at {_where(event.start_mark)}")
            # An alias always names an anchor; PyYAML's parser refuses one that does not.
            target = self.anchors.get(event.anchor or "", _Anchored(1, 0))
            if len(self.stack) + target.height > MAX_DEPTH:
                raise YamlProblem(path, f"nested deeper than {MAX_DEPTH} levels, "
                                  f"at {_where(event.start_mark)}")
            self.count(target.size, event)
            _value_done(self.stack, target.height)
            return
        self.count(1, event)
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise YamlProblem(path, f"nested deeper than {MAX_DEPTH} levels, "
                                  f"at {_where(event.start_mark)}")
            self.stack.append(_Frame(path, isinstance(event, yaml.MappingStartEvent),
                                     event.anchor, self.nodes - 1))
            return
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(1, 0)
        _value_done(self.stack, 0)

    def key(self, event: Any, mapping: _Frame) -> None:
        _refuse_tags(event, mapping.path)
        if not isinstance(event, yaml.ScalarEvent):
            raise YamlProblem(mapping.path, "a key must be a plain name, not a list, mapping "
                              f"or alias, at {_where(event.start_mark)}")
        self.count(1, event)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(1, 0)
        key = str(event.value)
        if key in mapping.keys:
            raise YamlProblem(_join(mapping.path, key),
                              f"duplicate key at {_where(event.start_mark)}")
        mapping.keys.add(key)
        mapping.key = key


def _syntax_error(exc: yaml.YAMLError, text: str, name: str) -> YamlProblem:
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return YamlProblem("", f"{name} is not valid YAML")
    problem = " ".join(str(getattr(exc, "problem", "") or "").split())[:120]
    if "nesting depth" in problem:  # libyaml's own bound, met while scanning ahead
        problem = f"nested deeper than {MAX_DEPTH} levels"
    lines = text.splitlines()
    if mark.line < len(lines) and "\t" in lines[mark.line][: mark.column + 1]:
        problem = "a tab character; YAML indents with spaces only"
    return YamlProblem("", f"{name} is not valid YAML at {_where(mark)}"
                       + (f": {problem}" if problem else ""))


def _read(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlProblem("", f"cannot read {path}: {exc.strerror or 'unreadable'}") from None
    except ValueError:  # a NUL in the name
        raise YamlProblem("", f"cannot read {path!r}: not a valid file name") from None
    if len(data) > MAX_BYTES:
        raise YamlProblem("", f"{path} is larger than {MAX_BYTES // 1024 // 1024} MiB; "
                          "a config is far smaller")
    return data


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblem("", f"{name} is not UTF-8: byte 0x{data[exc.start]:02x} at line "
                          f"{line}, column {column} (offset {exc.start})") from None
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise YamlProblem("", f"{name} has control character U+{ord(bad.group()):04X} at "
                          f"line {line}, column {column}; a config is plain text")
    return text


def read_yaml(path: str | Path) -> Any:
    """The one document in the file at `path` (None when empty); else YamlProblem."""
    name = str(path)
    text = _decode(_read(path), name)
    try:
        events = _Loader(text)
        try:
            _Checker(name).run(events)
        finally:
            events.dispose()
        loader = _Loader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ConstructorError as exc:
        where = f" at {_where(exc.problem_mark)}" if exc.problem_mark else ""
        raise YamlProblem("", f"{name}: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, name) from None

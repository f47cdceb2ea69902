"""Hypothesis strategies shared by the config fuzz tests: an example config with a few
values replaced by anything YAML can hold."""

import copy
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from fleet_common.config import ConfigError


def values(keys: Sequence[str], tricky: Sequence[str]) -> st.SearchStrategy[Any]:
    """Scalars, `tricky` strings and small collections with plausible `keys`."""

    def collections(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        names = st.sampled_from(list(keys)) | st.text(max_size=5)
        return st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4)

    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
        | st.sampled_from(list(tricky)),
        collections,
        max_leaves=10,
    )


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


def mutations(example: dict[str, Any], anything: st.SearchStrategy[Any]
              ) -> Callable[[str], st.SearchStrategy[dict[str, Any]]]:
    """For a section of `example`: the example with 1 to 3 of its values replaced."""

    @st.composite
    def mutated(draw: st.DrawFn, section: str) -> dict[str, Any]:
        document = copy.deepcopy(example)
        for _ in range(draw(st.integers(1, 3))):
            # One section at a time: an error in an earlier one would hide the rest.
            *parents, last = draw(st.sampled_from(paths(document[section], (section,))))
            node = document
            for part in parents:
                node = node[part]
            node[last] = draw(anything)
        return document

    return mutated


def fails_only_with_config_error(load: Callable[[], object]) -> None:
    """`load` either succeeds or raises one ConfigError, on one line."""
    try:
        load()
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)

"""Read YAML into line-numbered nodes and check their shapes, collecting every problem instead of raising."""

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.reader import ReaderError

T = TypeVar("T")

# `$${` is a literal `${`; `${NAME}` is a variable; any other `${` is malformed.
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_VARIABLE_HINTS = {"CREDENTIALS_DIRECTORY": " (systemd sets it for a unit with LoadCredential=)"}


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the config file, located by file, line and key path."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file
        return ": ".join(part for part in (where, self.key, self.message) if part)


@dataclass(frozen=True)
class Node:
    """A YAML value with where it was written: scalars as Python values, lists of Nodes, dicts of Nodes."""

    value: Any
    line: int  # 1-based line where the value starts
    key_line: int  # 1-based line of the key that holds the value (its own line outside a mapping)
    text: str | None = None  # a scalar as written, before YAML turned it into a number or boolean


def compose_yaml(text: str, file: str) -> tuple[Node | None, list[ConfigProblem]]:
    """Parse one YAML document into Nodes; return no Node when the text is not YAML or is empty."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        return None, [_syntax_problem(error, file)]
    except ReaderError as error:
        message = f"not valid YAML: {error.reason} at character {error.position}"
        return None, [ConfigProblem(file, None, "", message)]
    if root is None:
        return None, [ConfigProblem(file, None, "", "the file is empty; it must start with `version: 1`")]
    converter = _Converter(file)
    return converter.convert(root, root.start_mark.line + 1, ""), converter.problems


def _syntax_problem(error: yaml.MarkedYAMLError, file: str) -> ConfigProblem:
    """Describe a YAML syntax error by line and reason, never by a snippet (it may hold a secret)."""
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else None
    context = f" ({error.context})" if error.context else ""
    return ConfigProblem(file, line, "", f"YAML syntax error: {error.problem}{context}")


class _Converter:
    """Turns composed YAML nodes into Nodes, reporting duplicate keys and unreadable scalars."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []
        self._constructor = SafeConstructor()
        self._open: set[int] = set()

    def convert(self, node: yaml.Node, key_line: int, path: str) -> Node:
        line = node.start_mark.line + 1
        if id(node) in self._open:
            self._problem(line, path, "an alias refers to the value that contains it")
            return Node(None, line, key_line)
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return Node(self._mapping(node, path), line, key_line)
            if isinstance(node, SequenceNode):
                items = [self.convert(item, item.start_mark.line + 1, f"{path}[{index}]")
                         for index, item in enumerate(node.value)]
                return Node(items, line, key_line)
            return Node(self._scalar(node, line, path), line, key_line, node.value)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, path: str) -> dict[str, Node]:
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                self._problem(key_line, path, "a key must be a plain name, not a list or mapping")
                continue
            key = key_node.value
            if key in entries:
                first = entries[key].key_line
                self._problem(key_line, join_key(path, key), f"duplicate key (first written at line {first})")
                continue
            entries[key] = self.convert(value_node, key_line, join_key(path, key))
        return entries

    def _scalar(self, node: ScalarNode, line: int, path: str) -> Any:
        try:
            return self._constructor.construct_object(node)
        except (ConstructorError, ValueError):
            self._problem(line, path, f"cannot read this value as YAML type {node.tag}")
            return node.value

    def _problem(self, line: int, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, line, key, message))


def join_key(path: str, key: str) -> str:
    """The dotted key path of `key` inside `path`."""
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """Name the YAML type of a value for a problem message, without showing the value."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
             (list, "a list"), (dict, "a mapping"))
    if value is None:
        return "nothing"
    return next((name for kind, name in kinds if isinstance(value, kind)), f"a {type(value).__name__}")


def has_literal_text(raw: str) -> bool:
    """Whether raw holds text of its own besides ${VAR} references."""
    return bool(_VARIABLE.sub("", raw).strip())


class Reader:
    """Typed access to Nodes: each bad value records a problem and reads as None."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.problems: list[ConfigProblem] = []

    def problem(self, line: int | None, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, line, key, message))

    def entries(self, node: Node, path: str) -> dict[str, Node]:
        """A mapping whose keys are names the file chooses; empty when the value is not a mapping."""
        if isinstance(node.value, dict):
            return node.value
        self.problem(node.line, path, f"must be a mapping of names (got {describe(node.value)})")
        return {}

    def mapping(self, node: Node, path: str, allowed: Iterable[str],
                required: Iterable[str] = ()) -> dict[str, Node] | None:
        """A mapping of known keys: report unknown and missing ones; None when the value is not a mapping."""
        if not isinstance(node.value, dict):
            self.problem(node.line, path, f"must be a mapping (got {describe(node.value)})")
            return None
        allowed = tuple(allowed)
        misspelt = set()  # allowed keys an unknown key is probably meant to be
        for key, child in node.value.items():
            if key not in allowed:
                self.problem(child.key_line, join_key(path, key), _unknown_key_message(key, allowed))
                misspelt.update(difflib.get_close_matches(key, allowed, n=1))
        for key in required:
            if key not in node.value and key not in misspelt:  # a misspelling is reported once, as such
                self.problem(node.key_line, path, f"missing required key `{key}`")
        return {key: child for key, child in node.value.items() if key in allowed}

    def optional(self, fields: Mapping[str, Node], key: str, path: str,
                 read: Callable[[Node, str], T | None]) -> T | None:
        """Read fields[key] with `read` when it is present."""
        node = fields.get(key)
        return None if node is None else read(node, join_key(path, key))

    def text(self, node: Node, path: str, expected: str = "a string") -> str | None:
        """A non-empty string with ${VAR} filled in; an integer is taken as written (ids, pool names)."""
        if isinstance(node.value, str):
            raw = node.value
        elif isinstance(node.value, int) and not isinstance(node.value, bool) and node.text is not None:
            raw = node.text
        else:
            self.problem(node.line, path, f"must be {expected} (got {describe(node.value)})")
            return None
        value = self.interpolate(raw, node.line, path)
        if value is not None and not value.strip():
            self.problem(node.line, path, "must not be empty")
            return None
        return value

    def integer(self, node: Node, path: str, low: int, high: int | None = None) -> int | None:
        """An integer (not a boolean) from low to high."""
        value = node.value
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(node.line, path, f"must be an integer (got {describe(value)})")
            return None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            self.problem(node.line, path, f"must be {bounds} (got {value})")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        """A YAML boolean; a quoted "yes" or "true" is a string, not a boolean."""
        if isinstance(node.value, bool):
            return node.value
        self.problem(node.line, path, f"must be true or false, unquoted (got {describe(node.value)})")
        return None

    def strings(self, node: Node, path: str) -> tuple[str, ...] | None:
        """A list of non-empty strings."""
        if not isinstance(node.value, list):
            self.problem(node.line, path, f"must be a list of strings (got {describe(node.value)})")
            return None
        values = [self.text(item, f"{path}[{index}]") for index, item in enumerate(node.value)]
        return None if None in values else tuple(values)

    def interpolate(self, raw: str, line: int, path: str) -> str | None:
        """Fill ${VAR} from the environment; `$${` stands for a literal `${`. None if a variable is unset."""
        missing: list[str] = []
        malformed = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal malformed
            name = match[1]
            if match[0] == "$${":
                return "${"
            if name is None:
                malformed = True
            elif name in self.environ:
                return self.environ[name]
            else:
                missing.append(name)
            return ""

        value = _REFERENCE.sub(substitute, raw)
        if malformed:
            self.problem(line, path,
                         "`${` must be followed by a variable name and `}` (write `$${` for a literal `${`)")
        for name in dict.fromkeys(missing):
            self.problem(line, path, f"environment variable {name} is not set{_VARIABLE_HINTS.get(name, '')}")
        return None if malformed or missing else value


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown key{hint}; allowed keys: {', '.join(allowed)}"

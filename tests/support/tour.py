"""The curl examples of a Markdown page, and the answers the page shows for them.

A page's ```sh blocks hold commands; a ``curl`` command (with its ``\\`` continuation lines) is
a step, and the ``# →`` comment after it (on its line or on the following ``#`` lines) is the
answer the page promises: an optional status, then JSON as the page writes it, where

- ``...`` as a value, ``{...}`` and ``[...]`` stand for any value;
- ``, ...}`` ends an object that has more keys (every object may have keys the page leaves out);
- ``, ...]`` ends a list that goes on past the items shown;
- a string ending in ``..."`` is the beginning of the real one;
- ``"key": value`` alone is a part of the answer object.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ANY = "<any value>"
MORE = "<more items>"


@dataclass
class Step:
    page: str
    line: int
    command: str
    status: int | None
    expected: object  # the promised JSON, with ANY/MORE markers; None: the page promises nothing

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.command}"


def _promise(text: str) -> tuple[int | None, object]:
    text = text.strip()
    status = None
    match = re.match(r"(\d{3})\b\s*", text)
    if match:
        status, text = int(match.group(1)), text[match.end() :]
    if not text:
        return status, None
    if text.startswith('"') and '":' in text:
        text = "{" + text + "}"
    text = text.replace("{...}", json.dumps(ANY)).replace("[...]", json.dumps(ANY))
    text = re.sub(r",\s*\.\.\.\s*}", "}", text)
    text = re.sub(r",\s*\.\.\.\s*]", ", " + json.dumps(MORE) + "]", text)
    text = re.sub(r"(?<=[:\[,])(\s*)\.\.\.(?=\s*[,}\]])", r"\1" + json.dumps(ANY), text)
    return status, json.loads(text)


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text.split("# →")[0], comments=False)
    except ValueError:
        return True
    return False


def curl_steps(path: Path) -> list[Step]:
    """The page's curl commands in order, each with the answer the page shows for it."""
    steps: list[Step] = []
    in_sh = False
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            in_sh = line.strip() == "```sh" and not in_sh
            index += 1
            continue
        if not (in_sh and line.startswith("curl ")):
            index += 1
            continue
        start = index
        parts = [line]
        # A command goes on after a trailing backslash and inside an open quote (a -d '...' body).
        while (parts[-1].rstrip().endswith("\\") or _open_quote(" ".join(parts))) and index + 1 < len(lines):
            index += 1
            parts.append(lines[index])
        command = " ".join(part.rstrip().removesuffix("\\").strip() for part in parts)
        promise = ""
        if "# →" in command:
            command, _, promise = command.partition("# →")
        command = command.strip()
        # The answer may also follow on "# →" and indented "#" lines.
        if not promise and index + 1 < len(lines) and lines[index + 1].startswith("# →"):
            index += 1
            promise = lines[index].removeprefix("# →")
            while index + 1 < len(lines) and re.match(r"#\s{2,}", lines[index + 1]):
                index += 1
                promise += " " + lines[index][1:].strip()
        status, expected = _promise(promise)
        steps.append(Step(page=path.name, line=start + 1, command=command, status=status, expected=expected))
        index += 1
    return steps


def mismatch(expected: object, actual: object, where: str = "answer") -> str | None:
    """Where ``actual`` differs from the promise ``expected`` (None: it keeps it)."""
    if expected == ANY:
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}: no key {key!r} in {sorted(actual)}"
            found = mismatch(value, actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where}: expected a list, got {actual!r}"
        more = bool(expected) and expected[-1] == MORE
        items = expected[:-1] if more else expected
        if len(actual) < len(items) or (not more and len(actual) != len(items)):
            return f"{where}: expected {len(items)}{'+' if more else ''} items, got {len(actual)}: {actual!r}"
        for number, (value, got) in enumerate(zip(items, actual)):
            found = mismatch(value, got, f"{where}[{number}]")
            if found:
                return found
        return None
    if isinstance(expected, str) and expected.endswith("...") and isinstance(actual, str):
        return None if actual.startswith(expected[:-3]) else f"{where}: {actual!r} does not start {expected[:-3]!r}"
    if expected != actual or type(expected) is not type(actual):
        return f"{where}: expected {expected!r}, got {actual!r}"
    return None

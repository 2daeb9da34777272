"""Where each key of a TOML document sits: (path) -> line number.

tomllib reports syntax errors with a line and column but returns plain dicts without
positions, so scenario errors ("file:line: key: message") need this small scan of the
source text. It runs only on text tomllib already accepted, so it can be simple: it
tracks [table] and [[array]] headers, `key = value` lines (dotted and quoted keys too),
keys inside inline tables and the elements of arrays, even across lines.

A path is a tuple of str keys and int array indexes, exactly as in the parsed dict:
`[[arms]]` number 2, key `profile` -> ("arms", 1, "profile").
"""

from __future__ import annotations

import bisect
import json
import re

Path = tuple  # tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def syntax_error(path: str, text: str, e: Exception) -> str:
    """`path:line: TOML syntax error: message (column c)` from tomllib's TOMLDecodeError,
    whose message ends in "(at line L, column C)" or "(at end of document)"."""
    msg = str(e)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
    if m:
        return f"{path}:{m.group(1)}: TOML syntax error: {msg[:m.start()]} (column {m.group(2)})"
    m = re.search(r"\s*\(at end of document\)\s*$", msg)
    return f"{path}:{text.count(chr(10)) + 1}: TOML syntax error: {msg[:m.start()] if m else msg}"


def nesting_depth(obj: object) -> int:
    """How deep tables (dicts) and arrays (lists) sit inside each other; 0 for a scalar.
    Iterative, so a pathological document cannot exhaust the recursion limit here."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d + 1)
            stack.extend((x, d + 1) for x in v)
    return deepest


def deep_line(text: str, limit: int) -> int:
    """Line (1-based) where `[`/`{` nesting first passes `limit` (strings and comments are
    skipped roughly), else the line of the deepest dotted header; 1 if neither is found."""
    depth, line, i, n = 0, 1, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "\"'":
            j = text.find(c, i + 1)
            while c == '"' and j > 0 and _escaped(text, j):
                j = text.find(c, j + 1)
            if j < 0:
                break
            line += text.count("\n", i, j)
            i = j
        elif c in "[{":
            depth += 1
            if depth > limit:
                return line
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    best, best_line = 0, 1
    for no, ln in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*\[\[?([^\]]*)\]", ln)
        if m and m.group(1).count(".") > best:
            best, best_line = m.group(1).count("."), no
    return best_line


def key_lines(text: str) -> dict[Path, int]:
    """Line (1-based) of every key, table header and array element in `text`."""
    scan = _Scanner(text)
    try:
        scan.document()
    except (IndexError, ValueError):  # never expected on valid TOML; keep what we found
        pass
    return scan.lines


def line_of(lines: dict[Path, int], path: Path) -> int:
    """Line of `path`, else of its nearest ancestor that has one, else 1."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return 1


class _Scanner:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0
        self.lines: dict[Path, int] = {}
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._aot_count: dict[Path, int] = {}

    def line(self, pos: int | None = None) -> int:
        return bisect.bisect_right(self._starts, self.i if pos is None else pos)

    def mark(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    # -- lexing ------------------------------------------------------------

    def peek(self, n: int = 1) -> str:
        return self.t[self.i:self.i + n]

    def skip_ws(self, newlines: bool) -> None:
        """Skip spaces, and with newlines=True also line breaks and comments."""
        while self.i < len(self.t):
            c = self.t[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#" and newlines:
                j = self.t.find("\n", self.i)
                self.i = len(self.t) if j < 0 else j
            else:
                return

    def skip_line(self) -> None:
        j = self.t.find("\n", self.i)
        self.i = len(self.t) if j < 0 else j + 1

    def string(self) -> str:
        """Consume one string (any of TOML's four kinds); return its text (roughly decoded)."""
        t, i = self.t, self.i
        for quote in ('"""', "'''"):
            if t.startswith(quote, i):
                j = _closing(t, quote, i + 3)
                # a closing delimiter may be followed by up to two more quotes that belong to the text
                end = j + 3
                while t.startswith(quote[0], end) and end - (j + 3) < 2:
                    end += 1
                self.i = end
                return t[i + 3:end - 3]
        q = t[i]
        j = _closing(t, q, i + 1)
        self.i = j + 1
        raw = t[i:j + 1]
        if q == '"':
            try:
                return json.loads(raw)
            except ValueError:
                return raw[1:-1]
        return raw[1:-1]

    def key(self) -> tuple[str, ...]:
        """A dotted key: bare, "quoted" or 'literal' parts joined by dots."""
        parts = []
        while True:
            self.skip_ws(False)
            c = self.peek()
            if c in "\"'":
                parts.append(self.string())
            else:
                m = _BARE.match(self.t, self.i)
                if not m:
                    raise ValueError("expected a key")
                parts.append(m.group())
                self.i = m.end()
            self.skip_ws(False)
            if self.peek() != ".":
                return tuple(parts)
            self.i += 1

    # -- structure ---------------------------------------------------------

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_ws(True)
            if self.i >= len(self.t):
                return
            line = self.line()
            if self.peek(2) == "[[":
                self.i += 2
                name = self.key()
                self.i = self.t.index("]]", self.i) + 2
                n = self._aot_count.get(name, 0)
                self._aot_count[name] = n + 1
                # a new element resets the counts of arrays nested under the previous one
                for k in [k for k in self._aot_count if len(k) > len(name) and k[:len(name)] == name]:
                    del self._aot_count[k]
                table = self._resolve(name) + (n,)
                for k in range(1, len(name)):
                    self.mark(self._resolve(name[:k]), line)
                self.mark(table[:-1], line)
                self.mark(table, line)
                self.skip_line()
            elif self.peek() == "[":
                self.i += 1
                name = self.key()
                self.i = self.t.index("]", self.i) + 1
                table = self._resolve(name)
                # `[foo.bar]` also creates `foo` here (unless an earlier line did)
                for n in range(1, len(name)):
                    self.mark(self._resolve(name[:n]), line)
                self.mark(table, line)
                self.skip_line()
            else:
                self.keyval(table)

    def _resolve(self, name: tuple[str, ...]) -> Path:
        """Header keys -> path, inserting the current index of any enclosing [[array]]."""
        out: list = []
        for j, k in enumerate(name):
            out.append(k)
            n = self._aot_count.get(name[:j + 1])
            if n is not None and j < len(name) - 1:  # an enclosing [[array]]: its latest element
                out.append(n - 1)
        return tuple(out)

    def keyval(self, table: Path) -> None:
        line = self.line()
        k = self.key()
        for n in range(1, len(k) + 1):
            self.mark(table + k[:n], line)
        self.skip_ws(False)
        if self.peek() != "=":
            raise ValueError("expected =")
        self.i += 1
        self.skip_ws(False)
        self.value(table + k)

    def value(self, path: Path) -> None:
        c = self.peek()
        if c == "{":
            self.i += 1
            while True:
                self.skip_ws(True)
                if self.peek() == "}":
                    self.i += 1
                    return
                self.keyval(path)
                self.skip_ws(True)
                if self.peek() == ",":
                    self.i += 1
        elif c == "[":
            self.i += 1
            n = 0
            while True:
                self.skip_ws(True)
                if self.peek() == "]":
                    self.i += 1
                    return
                self.mark(path + (n,), self.line())
                self.value(path + (n,))
                n += 1
                self.skip_ws(True)
                if self.peek() == ",":
                    self.i += 1
        elif c in "\"'":
            self.string()
        else:
            m = re.compile(r"[^,\]}\n#]*").match(self.t, self.i)
            self.i = m.end()


def _closing(t: str, delim: str, j: int) -> int:
    """Index of the delimiter that closes a string whose text starts at j: basic strings
    (double quotes) skip backslash-escaped quotes, literal strings (single) have none."""
    while True:
        j = t.index(delim, j)
        if delim[0] == '"' and _escaped(t, j):
            j += 1
            continue
        return j


def _escaped(t: str, j: int) -> bool:
    """Whether the quote at t[j] is escaped by an odd run of backslashes."""
    n = 0
    while j - 1 - n >= 0 and t[j - 1 - n] == "\\":
        n += 1
    return n % 2 == 1

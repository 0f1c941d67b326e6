"""Find the secrets typed on a ``%nats_connect`` line, by position, without parsing it.

The magic's own parser may fail (an unknown flag, a missing value, unbalanced quotes) and the
secret must go from the input history all the same, so this reads the raw cell text itself:
it splits each ``%nats_connect`` line like a shell while keeping where each word starts and
ends, decides which words are secret, and replaces exactly those characters by ``***``. The
rest of the cell is left as typed (``--timeout 3`` keeps its ``3`` whatever the secret is).

Secret words:

- the value of ``--token`` / ``--password`` (also ``--token=VALUE`` and the abbreviations
  argparse accepts, such as ``--tok``), and of a mistyped flag close to a secret one
  (``--tokn``, ``--pasword``, ``--secret``);
- the user-info of a URL: the password of ``nats://user:PASSWORD@host``, the token of
  ``nats://TOKEN@host``;
- an NKey seed (``SU...``) or a user JWT pasted anywhere on the line (``--nkey`` and
  ``--creds`` take file paths, which are not secret).

A value that is only a ``{expr}`` field or ``$name`` is left alone: IPython fills it in from
the namespace, so the secret itself was never typed.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["scrub_cell", "scrub_line", "secret_spans"]

MASK = "***"
# The magic, with its % or (automagic) bare at the start of a line.
_MAGIC_RE = re.compile(r"(?:%|^\s*)nats_connect\b")
_SECRET_FLAGS = ("token", "password")
# Flags of %nats_connect that take a value (the value is a word of its own, never a URL).
_VALUE_FLAGS = ("token", "user", "password", "creds", "nkey", "tls-ca", "tls-cert", "tls-key",
                "name", "context")
# Names a mistyped secret flag is likely to resemble.
_SECRET_WORDS = ("token", "password", "passwd", "pass", "pwd", "secret", "auth", "jwt", "seed")
_SEED_RE = re.compile(r"S[UAOCNPX][A-Z2-7]{50,}")
_JWT_RE = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]+")
_FIELD_ONLY_RE = re.compile(r"^(\{[^{}]+\}|\$\w+)$")


def _words(text: str) -> list[tuple[str, int, int]]:
    """Split like a POSIX shell; each word with its unquoted value and its [start, end) span
    in `text`. Never fails: an unbalanced quote runs to the end of the text."""
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, value = i, []
        while i < n and not text[i].isspace():
            c = text[i]
            if c in "'\"":
                j = i + 1
                while j < n and text[j] != c:
                    if c == '"' and text[j] == "\\" and j + 1 < n:
                        j += 1
                    value.append(text[j])
                    j += 1
                i = j + 1
            elif c == "\\" and i + 1 < n:
                value.append(text[i + 1])
                i += 2
            else:
                value.append(c)
                i += 1
        out.append(("".join(value), start, min(i, n)))
    return out


def _flag(word: str) -> tuple[str, bool] | None:
    """(name, has '=value') of a long flag word, else None."""
    if not word.startswith("--") or len(word) < 3:
        return None
    name, eq, _ = word[2:].partition("=")
    return name.lower(), bool(eq)


def _matches(name: str, flags: tuple[str, ...]) -> bool:
    """`name` is one of `flags` or an abbreviation argparse could expand to one."""
    return any(f.startswith(name) for f in flags)


def _secret_flag(name: str) -> bool:
    if _matches(name, _SECRET_FLAGS):
        return True
    if _matches(name, _VALUE_FLAGS):
        return False
    return bool(difflib.get_close_matches(name, _SECRET_WORDS, n=1, cutoff=0.75))


def _userinfo_span(raw: str) -> tuple[int, int] | None:
    """Within one raw word holding a URL: the span of its password (user:PASSWORD@) or token
    (TOKEN@), else None."""
    at = raw.rfind("@")
    if at < 0:
        return None
    scheme = raw.find("://")
    begin = scheme + 3 if 0 <= scheme < at else (1 if raw[:1] in "'\"" else 0)
    colon = raw.find(":", begin, at)
    begin = colon + 1 if colon >= 0 else begin
    return (begin, at) if at > begin else None


def _pasted(value: str) -> bool:
    """An NKey seed or a user JWT in the word (key material, wherever it was typed)."""
    return bool(_SEED_RE.search(value) or _JWT_RE.search(value))


def secret_spans(line: str) -> list[tuple[int, int]]:
    """[start, end) spans of the secrets in the arguments of one ``%nats_connect`` line."""
    words = _words(line)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        value, start, end = words[i]
        raw = line[start:end]
        flag = _flag(value)
        if flag is not None:
            name, inline = flag
            secret = _secret_flag(name)
            if inline:  # --token=VALUE
                after = value.partition("=")[2]
                if (secret and not _FIELD_ONLY_RE.match(after)) or _pasted(after):
                    spans.append((start + raw.index("=") + 1, end))
            elif (secret or _matches(name, _VALUE_FLAGS)) and i + 1 < len(words):
                nxt_value, nxt_start, nxt_end = words[i + 1]
                nxt_flag = _flag(nxt_value)
                # "--token --name x": the value is missing, the next word is a flag of ours
                if nxt_flag is None or not _matches(nxt_flag[0], (*_VALUE_FLAGS, "help")):
                    i += 1
                    if ((secret and not _FIELD_ONLY_RE.match(nxt_value))
                            or _pasted(nxt_value)):
                        spans.append((nxt_start, nxt_end))
        elif _pasted(value):
            spans.append((start, end))
        elif "@" in value and not _FIELD_ONLY_RE.match(value):
            found = _userinfo_span(raw)
            if found is not None and not _FIELD_ONLY_RE.match(raw[found[0]:found[1]]):
                spans.append((start + found[0], start + found[1]))
        i += 1
    return spans


def scrub_line(line: str) -> str:
    """The arguments of one ``%nats_connect`` line with each secret replaced by ``***``."""
    for start, end in sorted(secret_spans(line), reverse=True):
        line = line[:start] + MASK + line[end:]
    return line


def scrub_cell(cell: str) -> str:
    """`cell` with the secrets of every ``%nats_connect`` line in it replaced by ``***``;
    every other character is kept."""
    lines = cell.split("\n")
    for k, text in enumerate(lines):
        m = _MAGIC_RE.search(text)
        if m is not None:
            lines[k] = text[:m.end()] + scrub_line(text[m.end():])
    return "\n".join(lines)

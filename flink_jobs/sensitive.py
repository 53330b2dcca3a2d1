"""Secrets in the job's settings: Kafka client properties (Java properties files), and
redaction for everything that logs or prints a setting.

A secret is the password in a Redis URL (``redis://user:PASSWORD@host``, or a
``?password=`` query argument) and any Kafka property whose value is a credential
(``sasl.jaas.config``, ``ssl.*password*``, PEM keys and certificates given inline, tokens).
Secrets are read from the environment or a file (see ``flink_jobs.config``), never needed on
a command line, and :func:`redact_url` / :func:`redact_properties` hide them wherever a
setting is shown.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

MASK = "***"

# Kafka's own Password-typed client settings and anything named like a credential.
_SECRET_KEY = re.compile(r"password|secret|jaas|token|credential|^ssl\.keystore\.key$|certificate", re.I)
_SECRET_QUERY = re.compile(r"password|passwd|secret|token", re.I)
_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")
_PORT = re.compile(r"[0-9]{1,5}")


def is_secret_property(key: str) -> bool:
    """True for a Kafka client property whose value must never be shown."""
    return bool(_SECRET_KEY.search(key))


def redact_url(url: str) -> str:
    """The URL with any password hidden: ``redis://user:***@host:6379/0``.

    A URL is shown when it may be wrong, so nothing here trusts its shape. Hidden: what
    follows the user name up to the *last* ``@`` (a password may hold ``/``, ``?`` or ``@``),
    scheme or not; without an ``@``, a port that is no port number (a password whose
    ``@host`` is missing); and ``password=`` (and the like) query arguments, from the first
    ``?``. Where these overlap, one mask covers them."""
    if not isinstance(url, str):
        return MASK
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    userinfo, at, _ = url[start:].rpartition("@")
    hidden = []                                   # (start, end) spans of url to mask
    if at:
        password = userinfo.find(":") + 1
        if password:
            hidden.append((start + password, start + len(userinfo)))
    else:
        authority = re.match(r"[^/?#]*", url[start:]).group()
        port = authority.find(":", authority.rfind("]") + 1) + 1   # after an IPv6 address
        if port and authority[port:] and not _PORT.fullmatch(authority[port:]):
            hidden.append((start + port, len(url)))
    query = url.find("?") + 1
    if query:
        for arg in url[query:].split("&"):
            name, eq, _ = arg.partition("=")
            if eq and _SECRET_QUERY.search(name):
                hidden.append((query + len(name) + 1, query + len(arg)))
            query += len(arg) + 1
    parts, end = [], 0
    for a, b in sorted(hidden):
        if parts and a <= end:                    # overlaps the span before
            end = max(end, b)
        else:
            parts += [url[end:a], MASK]
            end = b
    return "".join(parts) + url[end:]


def url_has_secret(url: str) -> bool:
    return redact_url(url) != url


def redact_properties(properties: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret_property(k) else v) for k, v in properties.items()}


class Properties(dict):
    """Kafka client properties (``str -> str``), read-only so that a frozen JobConfig can
    have them as a default. Its repr hides secret values; the values themselves are intact."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def _read_only(self, *args, **kwargs):
        raise TypeError("Properties are read-only; build a new one")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only

    def __hash__(self):
        return hash(tuple(sorted(self.items())))

    def __reduce__(self):   # pickle/cloudpickle (the job's functions carry the config)
        return (Properties, (dict(self),))

    def __repr__(self):
        return repr(redact_properties(self))

    __str__ = __repr__


# -- Java properties format (java.util.Properties.load), UTF-8 ---------------------------------

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterable[str]:
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        # a line ending in an odd number of backslashes continues on the next one
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1:
            line = line[:-1]
            if i >= len(lines):
                break
            line += lines[i].lstrip(" \t\f")
            i += 1
        yield line


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "u":
            code = s[i + 2:i + 6]
            if len(code) != 4 or not all(ch in "0123456789abcdefABCDEF" for ch in code):
                raise ValueError(f"malformed \\uXXXX escape in {s[:40]!r}")
            out.append(chr(int(code, 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(n, n))
            i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Java properties text -> dict (comments, ``=``/``:``/blank separators, continuation
    lines and escapes as java.util.Properties reads them)."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        i, key_end = 0, None
        while i < len(line):
            c = line[i]
            if c == "\\":
                i += 2
                continue
            if c in "=: \t\f":
                key_end = i
                break
            i += 1
        if key_end is None:
            key, value = line, ""
        else:
            key = line[:key_end]
            j = key_end
            while j < len(line) and line[j] in " \t\f":
                j += 1
            if j < len(line) and line[j] in "=:":
                j += 1
            while j < len(line) and line[j] in " \t\f":
                j += 1
            value = line[j:]
        result[_unescape(key)] = _unescape(value)
    return result


def read_properties(path: str | Path) -> dict[str, str]:
    try:
        return parse_properties(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read properties file {path}: {exc.strerror or exc}") from None


def format_properties(properties: Mapping[str, str]) -> str:
    def esc(s: str, key: bool) -> str:
        out = []
        for n, c in enumerate(s):
            if c == "\\":
                out.append("\\\\")
            elif c in "\t\n\r\f":
                out.append("\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}[c])
            elif c in "=:#!" or (c == " " and (key or n == 0)):
                out.append("\\" + c)
            else:
                out.append(c)
        return "".join(out)
    return "".join(f"{esc(k, True)}={esc(v, False)}\n" for k, v in properties.items())


def write_properties(path: str | Path, properties: Mapping[str, str]) -> Path:
    """Write a properties file readable by its owner only (it may hold credentials)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(format_properties(properties), encoding="utf-8")
    return path


def parse_assignment(text: str) -> tuple[str, str]:
    """``key=value`` (a ``--kafka-property`` argument) -> (key, value)."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ValueError("expected KEY=VALUE (a key, '=', then the value)")  # the text may be a secret
    return key, value


def read_secret_file(path: str | Path) -> str:
    """A one-value secret file (e.g. ``--redis-url-file``): its text without the trailing newline."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not value:
        raise ValueError(f"{path} is empty")
    return value


# Kafka client settings the job sets itself: given in kafka_properties they would fight the
# job's own (the Table connector takes the last one), so they are refused with the setting to use.
JOB_OWNED_KAFKA = {
    "bootstrap.servers": "kafka_bootstrap",
    "group.id": "consumer_group",
    "transactional.id": "transactional_id_prefix",
    "transaction.timeout.ms": "transaction_timeout_ms",
    "isolation.level": "always read_committed",
    "auto.offset.reset": "set by the job",
    "enable.auto.commit": "set by the connector",
    "key.serializer": "set by the connector", "value.serializer": "set by the connector",
    "key.deserializer": "set by the connector", "value.deserializer": "set by the connector",
}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def kafka_property_errors(properties: Mapping[str, str]) -> list[str]:
    errors = []
    for key in properties:
        if not _KEY.fullmatch(key):
            errors.append(f"kafka_properties: {key[:60]!r} is not a Kafka property name")
        elif key.startswith("properties."):
            errors.append(f"kafka_properties: give {key} without the 'properties.' prefix (the job adds it)")
        elif key in JOB_OWNED_KAFKA:
            errors.append(f"kafka_properties may not set {key} ({JOB_OWNED_KAFKA[key]})")
    return errors

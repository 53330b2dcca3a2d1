"""What deploy/k8s/Dockerfile puts into the image, read without Docker (the project's machines
have none): its stages and their COPY/ADD/ENV/WORKDIR/RUN instructions, and .dockerignore's
filter on the build context, with Docker's rules for both. Used by tests/unit/test_deploy.py
(every file copied is in the context) and tests/job/test_image.py (the files laid out, the
job started from them). Standard library only; not part of the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "k8s" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    keyword: str                 # upper case: COPY, ADD, RUN, ENV, ...
    flags: dict[str, str]        # --from=..., --checksum=... (values with ARGs substituted)
    args: list[str]              # the words after the flags (ARGs substituted; RUN: the raw text in args[0])


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def _logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined; comments and blank lines dropped
    (also inside a continuation, as Docker does)."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def _substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def parse(text: str) -> list[Stage]:
    """The stages, in order; ARG defaults are substituted into later COPY/ADD/ENV words
    (an ARG before the first FROM only into FROM lines, as Docker does)."""
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    variables: dict[str, str] = {}
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = _substitute(rest, global_args).split()
            words = [w for w in words if not w.startswith("--")]          # --platform=...
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
            variables = {}
            continue
        if keyword == "ARG":
            key, _, default = rest.partition("=")
            (global_args if not stages else variables)[key.strip()] = default.strip()
            continue
        if not stages:
            raise ValueError(f"{keyword} before the first FROM")
        if keyword == "RUN":
            stages[-1].instructions.append(Instruction(keyword, {}, [rest]))
            continue
        words = _substitute(rest, variables).split()
        flags = {}
        while words and words[0].startswith("--"):
            key, _, value = words.pop(0)[2:].partition("=")
            flags[key] = value
        stages[-1].instructions.append(Instruction(keyword, flags, words))
    return stages


def stage_chain(stages: list[Stage], target: Stage) -> list[Stage]:
    """``target`` and the stages of this Dockerfile it is built FROM, the first one first."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [target]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def is_url(source: str) -> bool:
    return re.match(r"[a-z]+://", source) is not None


def context_sources(stages: list[Stage]) -> list[str]:
    """Every path of the build context that a COPY or ADD of any stage reads."""
    return [src for stage in stages for ins in stage.instructions
            if ins.keyword in ("COPY", "ADD") and "from" not in ins.flags
            for src in ins.args[:-1] if not is_url(src)]


def environment(chain: list[Stage]) -> dict[str, str]:
    """The ENV of the stages in ``chain``, in order; ``$NAME`` of an earlier ENV expanded
    (a name only the base image sets, e.g. $PATH, stays as written)."""
    env: dict[str, str] = {}
    for stage in chain:
        for ins in stage.instructions:
            if ins.keyword != "ENV":
                continue
            if "=" not in ins.args[0]:                        # the old form: ENV NAME value
                pairs = [(ins.args[0], " ".join(ins.args[1:]))]
            else:
                pairs = [tuple(word.split("=", 1)) for word in ins.args]
            for key, value in pairs:
                env[key] = _substitute(value, env)
    return env


# --- .dockerignore ------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern:
    """Docker's pattern syntax (Go's filepath.Match, plus ** for any number of directories)."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    """.dockerignore's filter: the last pattern that matches a path or one of its parent
    directories decides; ``!`` patterns put back what an earlier one took out."""

    def __init__(self, text: str):
        self.patterns: list[tuple[bool, str, re.Pattern]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            body = line[1:].strip() if exception else line
            body = re.sub(r"/+", "/", body).strip("/")
            body = "/".join(p for p in body.split("/") if p != ".") or "."
            self.patterns.append((exception, body, _pattern_regex(body)))

    @classmethod
    def load(cls, path: Path = DOCKERIGNORE) -> "DockerIgnore":
        return cls(path.read_text() if path.exists() else "")

    def ignored(self, path: str) -> bool:
        parts = Path(path).as_posix().strip("/").split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        excluded = False
        for exception, _, regex in self.patterns:
            if any(regex.match(p) for p in prefixes):
                excluded = not exception
        return excluded

    def may_include_below(self, directory: str) -> bool:
        """Whether an exception could put back something under an ignored ``directory``."""
        directory = directory.strip("/") + "/"
        return any(exception and (body.startswith(directory) or "*" in body)
                   for exception, body, _ in self.patterns)

    def context_files(self, root: Path = ROOT):
        """Every file of ``root`` that the build context holds, as paths relative to it."""
        for path in sorted(root.iterdir()):
            rel = path.relative_to(root).as_posix()
            yield from self._walk(root, path, rel)

    def _walk(self, root: Path, path: Path, rel: str):
        if path.is_dir() and not path.is_symlink():
            if self.ignored(rel) and not self.may_include_below(rel):
                return
            for child in sorted(path.iterdir()):
                yield from self._walk(root, child, f"{rel}/{child.name}")
        elif not self.ignored(rel):
            yield rel

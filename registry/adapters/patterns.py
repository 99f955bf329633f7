"""Regular expressions from adapter configs, evaluated in linear time (RE2), with peft's semantics.

An adapter config carries regexes the registry must evaluate: `rank_pattern` / `alpha_pattern`
keys, a string `target_modules` or `exclude_modules`, `layers_pattern`, `modules_to_save`. peft
runs them with Python's `re`, a backtracking engine: one crafted key (`(\\w|\\.)*y`-style
nesting) takes exponential time, and a push or merge would hold a server thread for minutes. Here
every such pattern is compiled with RE2 (google-re2), whose matching time is linear in the name.

Each pattern is the exact string peft builds (`(.*\\.)?({key})$` for a pattern key, the
`(^|.*\\.){m}($|\\..*)` test of modules_to_save, ...), checked by Python's parser first so that an
invalid one is an InvalidInput naming the key, and a construct RE2 lacks (backreferences,
lookaround, conditionals, atomic groups, possessive repeats) is refused by name instead of being
evaluated differently. Two spellings are rewritten to RE2's: Python's `\\Z` is RE2's `\\z`, and
Python's `{,n}` is `{0,n}`. What stays different, for names with no newline and ASCII only:
nothing; `\\d`, `\\w`, `\\s` and `\\b` are ASCII in RE2 and Unicode in Python, and a `$` inside a
key does not also match before a final newline (the `$` peft appends is kept exact).

Work is bounded: at most MAX_PATTERN_KEYS keys per pattern dict, MAX_REGEX_KEYS of them using more
than `.`, MAX_PATTERN_CHARS characters per pattern, RE2_MAX_MEM bytes per compiled program.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from registry.errors import InvalidInput

MAX_PATTERN_CHARS = 1000
MAX_PATTERN_KEYS = 4096
MAX_REGEX_KEYS = 256
RE2_MAX_MEM = 1 << 20  # per compiled program; RE2 refuses a pattern whose program would not fit
CACHE_SIZE = 512

# Characters that make a pattern more than a literal with `.` wildcards.
_META = frozenset("\\^$*+?{}[]|()")
# Python parser opcodes of constructs RE2 does not have, and how the refusal names them.
_UNSUPPORTED = {
    "GROUPREF": "a backreference", "GROUPREF_EXISTS": "a conditional group", "ASSERT": "a lookaround assertion",
    "ASSERT_NOT": "a lookaround assertion", "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive quantifier",
}


def _parse(pattern: str) -> Any:
    """Python's own parse of the pattern (re._parser since 3.11, sre_parse before): peft's view of it."""
    import importlib

    try:
        parser = importlib.import_module("re._parser")
    except ImportError:  # pragma: no cover - Python 3.10
        parser = importlib.import_module("sre_parse")
    return parser.parse(pattern)


def _unsupported(node: Any) -> str | None:
    """The first construct of Python's parse tree that RE2 lacks, named for the error, or None."""
    if hasattr(node, "data"):  # a SubPattern: a list of (opcode, argument)
        node = node.data
    if not isinstance(node, (list, tuple)):
        return None
    if len(node) == 2 and hasattr(node[0], "name"):  # (opcode, argument)
        found = _UNSUPPORTED.get(node[0].name)
        return found or _unsupported(node[1])
    for item in node:
        found = _unsupported(item)
        if found:
            return found
    return None


def to_re2(pattern: str) -> str:
    """Python regex syntax to RE2's, outside character classes: `\\Z` -> `\\z`, `{,n}` -> `{0,n}`."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\z" if nxt == "Z" and not in_class else c + nxt)
            i += 2
            continue
        if in_class:
            if c == "]" and out and out[-1] not in ("[", "[^"):
                in_class = False
            out.append(c)
        elif c == "[":
            in_class = True
            out.append("[^" if pattern[i + 1:i + 2] == "^" else "[")
            i += 2 if pattern[i + 1:i + 2] == "^" else 1
            continue
        elif c == "{" and pattern[i + 1:i + 2] == ",":
            out.append("{0")
        else:
            out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compile(re2_pattern: str):
    import re2

    opts = re2.Options()
    opts.max_mem = RE2_MAX_MEM
    opts.log_errors = False
    return re2.compile(re2_pattern, options=opts)


def compile_pattern(pattern: str, *, what: str, re2_pattern: str | None = None):
    """The RE2 program of a Python-syntax pattern (cached). `what` names it in errors ("rank_pattern key 'x'").

    `re2_pattern` is the RE2 spelling when it is not `to_re2(pattern)` (a key's wrapper, whose
    final `$` has no RE2 equivalent but `\\n?\\z`).

    Raises:
        InvalidInput: too long, not a valid regex, or using a construct RE2 lacks
    """
    if not isinstance(pattern, str):
        raise InvalidInput(f"{what} must be a string")
    if len(pattern) > MAX_PATTERN_CHARS + 64:  # + the wrapper peft puts around a key
        raise InvalidInput(f"{what} is longer than {MAX_PATTERN_CHARS} characters")
    import re

    try:
        tree = _parse(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        raise InvalidInput(f"{what} is not a valid regular expression ({e})") from None
    construct = _unsupported(tree)
    if construct:
        raise InvalidInput(f"{what} uses {construct}, which the registry does not evaluate",
                           hint="rewrite the pattern without it (RE2 syntax: github.com/google/re2/wiki/Syntax)")
    import re2

    try:
        return _compile(to_re2(pattern) if re2_pattern is None else re2_pattern)
    except re2.error as e:
        raise InvalidInput(f"{what} uses a construct the registry does not evaluate ({e})",
                           hint="patterns are evaluated with RE2: github.com/google/re2/wiki/Syntax") from None


def fullmatch(pattern: str, text: str, *, what: str) -> bool:
    """Python's `re.fullmatch(pattern, text) is not None`, in linear time."""
    return compile_pattern(pattern, what=what).fullmatch(text) is not None


def match(pattern: str, text: str, *, what: str):
    """Python's `re.match(pattern, text)` (anchored at the start), in linear time; an RE2 match object."""
    return compile_pattern(pattern, what=what).match(text)


# -- the patterns peft builds around config entries ----------------------------------------------
def module_to_save_pattern(module: str) -> str:
    """The regex of peft's modules_to_save exclusion in check_target_module_exists (used with `re.match`)."""
    return rf"(^|.*\.){module}($|\..*)"


def layers_pattern(pattern: str) -> str:
    """The regex of peft's layer-index capture with a layers_pattern (used with `re.match`)."""
    return rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\."


DEFAULT_LAYERS = r".*?\.[^.]*\.(?P<idx>\d+)\."  # peft's capture without a layers_pattern


# -- rank_pattern / alpha_pattern keys --------------------------------------------------------------
def _key_program(key: str, field: str):
    # peft: re.match(rf"(.*\.)?({key})$", name). Its final `$` also matches before a trailing
    # newline; `\n?\z` is that, for a test that only asks whether there is a match.
    return compile_pattern(rf"(.*\.)?({key})$", what=f"{field} key {key!r}",
                           re2_pattern=to_re2(rf"(.*\.)?({key})") + r"\n?\z")


def is_wildcard_literal(key: str) -> bool:
    """A key with no regex syntax but `.` (a full module name, usually): matched without a regex engine."""
    return not (_META & set(key))


def _literal_key_matches(key: str, name: str) -> bool:
    """`re.match(rf"(.*\\.)?({key})$", name)` for a key whose only metacharacter is `.` (any char but newline)."""
    for text in (name, name[:-1]) if name.endswith("\n") else (name,):
        n = len(key)
        if len(text) < n:
            continue
        head, tail = text[:len(text) - n], text[len(text) - n:]
        if head and (not head.endswith(".") or "\n" in head):
            continue
        if all(k == c or (k == "." and c != "\n") for k, c in zip(key, tail)):
            return True
    return False


def check_pattern_keys(keys: Iterable[str], *, field: str) -> None:
    """Refuse a pattern dict whose keys peft could not evaluate or the registry will not (InvalidInput)."""
    keys = list(keys)
    if len(keys) > MAX_PATTERN_KEYS:
        raise InvalidInput(f"{field} has {len(keys)} keys; the registry accepts at most {MAX_PATTERN_KEYS}")
    regex = [k for k in keys if not is_wildcard_literal(k)]
    if len(regex) > MAX_REGEX_KEYS:
        raise InvalidInput(f"{field} has {len(regex)} regular-expression keys; the registry accepts at most "
                           f"{MAX_REGEX_KEYS}", hint="name modules in full, or merge keys with alternation")
    for k in keys:
        if len(k) > MAX_PATTERN_CHARS:
            raise InvalidInput(f"{field} key {k[:40]!r}... is longer than {MAX_PATTERN_CHARS} characters")
    for k in regex:
        _key_program(k, field)


def pattern_key(pattern_keys: Sequence[str] | Iterable[str], name: str, *, field: str = "rank_pattern") -> str:
    """peft's `utils.other.get_pattern_key`: the first key, in order, matching a dotted suffix of `name`, else `name`.

    Raises:
        InvalidInput: a key is not a valid pattern, or uses a construct RE2 lacks (named in the message)
    """
    for key in pattern_keys:
        if is_wildcard_literal(key):
            if _literal_key_matches(key, name):
                return key
        elif _key_program(key, field).match(name) is not None:
            return key
    return name

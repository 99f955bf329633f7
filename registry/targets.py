"""Publish targets and base roots: where a namespace's writes may publish, and read base models from.

Targets are an admin's policy, kept in the catalog (table publish_targets), never a caller's
input. A target is a URL root of one kind for one namespace (or every namespace):

    publish  dir:///srv/models/team-a   s3://bucket/team-a   hf://team-a-org   (hf: {"private": bool})
    base     dir:///srv/bases/team-a

The rules, applied by registry/workflows/publish.py and the base route:
- An HTTP caller publishes a version only to a URL under a publish target of the version's
  namespace (or a global one); an unrestricted admin (and the local operator) anywhere.
- Nobody, the local operator included, publishes into the registry's own home, store or cache
  (or its SQLite catalog): a folder there could be taken for the registry's own.
- Over HTTP, base models are registered only from a folder under a base root of the name's
  namespace (admins: anywhere but the registry's own folders), and a refusal says the same
  thing whether the folder is missing, a file, unreadable or outside the roots.
- Hub repos are created private unless the target that allows them says {"private": false}.

"Under" is decided on normalised places: no "." or ".." segments; dir:// paths with symlinks
resolved, inside-or-equal; s3:// bucket equal and key prefix at a "/" boundary; hf:// the org
(and repo, when the root names one), case-insensitive like the Hub. The parsing and matching are
pure functions (`place`, `under`, `protected_places`); `Targets` is the catalog side.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select

from registry.catalog import commands as C
from registry.catalog import models as M
from registry.core import Core
from registry.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from registry.settings import Settings
from registry.types import _Result

KINDS = ("publish", "base")  # publish: where versions may be published; base: where base models may be read
SCHEMES = {"dir": "dir", "file": "dir", "s3": "s3", "hf": "hf"}  # URL scheme -> the kind of place
OPTIONS = {"hf": {"private"}}  # the options each kind of place accepts


@dataclass(frozen=True)
class Target(_Result):
    """A publish target or base root as the catalog holds it."""

    id: int
    namespace: str | None  # None: every namespace
    kind: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class Place:
    """A normalised location: its scheme ("dir", "s3", "hf") and path segments.

    dir: the absolute path's parts (symlinks resolved); s3: [bucket, *key parts]; hf: [org, repo?]
    lowercased.
    """

    scheme: str
    parts: tuple[str, ...]


# -- pure functions ----------------------------------------------------------------------------------
def place(url: str, *, resolve: bool = True) -> Place:
    """The normalised place a target or publish URL names.

    Raises:
        InvalidInput: no scheme we know, a relative dir:// path, "." or ".." segments, an empty
            s3 key segment ("a//b"), a NUL byte
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidInput(f"not a target URL: {url!r}", hint="use dir:///path, s3://bucket/prefix or hf://org")
    scheme, _, rest = url.partition("://")
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise InvalidInput(f"no publish targets of scheme {scheme}:// (known: dir, s3, hf)", scheme=scheme)
    if "\0" in url:
        raise InvalidInput("a target URL cannot hold a NUL byte")
    if kind == "dir":
        parts = urlsplit(url)
        return dir_place(unquote(parts.netloc + parts.path), resolve=resolve)
    if kind == "s3":
        parts = urlsplit(url)
        key = parts.path.strip("/")
        segments = key.split("/") if key else []
        if not parts.netloc or "" in segments:
            raise InvalidInput(f"{url}: name a bucket and a key prefix without empty segments (s3://bucket/a/b)")
        _no_dots(url, segments)
        return Place("s3", (parts.netloc, *segments))
    repo = rest.strip("/").partition("@")[0]
    segments = repo.split("/") if repo else []
    if not 1 <= len(segments) <= 2 or "" in segments:
        raise InvalidInput(f"{url}: name an org (hf://org) or a repo (hf://org/repo)")
    _no_dots(url, segments)
    return Place("hf", tuple(s.lower() for s in segments))


def dir_place(path: str | Path, *, resolve: bool = True) -> Place:
    """The place of an absolute folder path (symlinks resolved as far as the path exists)."""
    text = str(path)
    if "\0" in text:
        raise InvalidInput("a path cannot hold a NUL byte")
    if not text.startswith("/"):
        raise InvalidInput(f"give an absolute path, not {text!r}")
    _no_dots(text, [s for s in text.split("/") if s])
    full = os.path.realpath(text) if resolve else os.path.normpath(text)
    return Place("dir", tuple(s for s in full.split("/") if s))


def _no_dots(url: str, segments: list[str]) -> None:
    if any(s in (".", "..") for s in segments):
        raise InvalidInput(f"{url}: '.' and '..' are not allowed in a target")


def under(p: Place, root: Place) -> bool:
    """True when `p` is `root` or inside it (whole segments only)."""
    return p.scheme == root.scheme and p.parts[:len(root.parts)] == root.parts


def protected_places(settings: Settings) -> list[Place]:
    """The registry's own folders: home, store and cache (and the SQLite catalog), symlinks resolved."""
    out = [dir_place(settings.home.expanduser().absolute()), dir_place(settings.cache_dir.expanduser().absolute())]
    store = settings.store_url
    if store.startswith("s3://"):
        parts = urlsplit(store)
        out.append(Place("s3", (parts.netloc, *[s for s in parts.path.split("/") if s])))
    elif "://" not in store or store.startswith("file://"):
        out.append(dir_place(Path(unquote(store.removeprefix("file://"))).expanduser().absolute()))
    if settings.db_url.startswith("sqlite:///"):
        db = settings.db_url.removeprefix("sqlite:///").partition("?")[0]
        if db and db != ":memory:":
            out.append(dir_place(Path(db).absolute()))
    return out


def is_protected(p: Place, settings: Settings) -> bool:
    return any(under(p, own) for own in protected_places(settings))


def namespace_of(name: str) -> str | None:
    """The namespace of an adapter or base model name ("team-a/bot" -> "team-a"), or None."""
    return name.split("/", 1)[0] if "/" in name else None


def check_options(kind: str, scheme: str, options: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    allowed = OPTIONS.get(scheme, set()) if kind == "publish" else set()
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidInput(f"a {kind} target on {scheme}:// takes no option {unknown[0]!r}"
                           + (f" (options: {', '.join(sorted(allowed))})" if allowed else ""), option=unknown[0])
    if "private" in options and not isinstance(options["private"], bool):
        raise InvalidInput("option 'private' is true or false", option="private")
    return options


def _convert(row: M.PublishTarget) -> Target:
    return Target(row.id, row.namespace, row.kind, row.url, dict(row.options or {}), row.created_by, row.created_at)


# -- the catalog side -------------------------------------------------------------------------------
class Targets:
    """Publish targets and base roots over one catalog; changes need an unrestricted admin."""

    def __init__(self, core: Core):
        self.core = core

    def _admin(self, what: str) -> None:
        if not self.core.is_operator:
            raise Forbidden(f"{what} needs an admin token without a namespace")

    def add(self, url: str, *, namespace: str | None, kind: str = "publish",
            options: dict[str, Any] | None = None) -> Target:
        """Allow `namespace` (None: every namespace) to publish under `url` (kind publish) or to
        register base models from folders under it (kind base).

        Raises:
            Forbidden: not an unrestricted admin
            InvalidInput: a bad URL, kind, namespace or option; a place inside the registry's own folders
            AlreadyExists: the same target is already there
        """
        from registry.tokens import NAMESPACE_RE

        self._admin("adding a publish target")
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}", kind=kind)
        if namespace is not None and not NAMESPACE_RE.fullmatch(namespace):
            raise InvalidInput(f"not a namespace: {namespace!r}", hint="lowercase letters, digits, '.', '_', '-'")
        p = place(url)
        if kind == "base" and p.scheme != "dir":
            raise InvalidInput(f"a base root is a folder (dir:///path), not {url}")
        opts = check_options(kind, p.scheme, options)
        if is_protected(p, self.core.settings):
            raise InvalidInput(f"{url} is inside the registry's own home, store or cache: never a target")
        norm = _url_of(p)
        with self.core.db.write() as s:
            for row in s.scalars(select(M.PublishTarget).where(M.PublishTarget.kind == kind)):
                if row.namespace == namespace and row.url == norm:
                    raise AlreadyExists(f"{kind} target {norm} of {namespace or 'every namespace'} exists "
                                        f"(id {row.id})", id=row.id)
            row = M.PublishTarget(namespace=namespace, kind=kind, url=norm, options=opts, created_by=self.core.actor,
                                  created_at=M.utcnow())
            s.add(row)
            s.flush()
            C.record(s, self.core.actor, "target.add", f"{namespace or '*'}:{kind}:{norm}",
                     {"id": row.id, "namespace": namespace, "kind": kind, "url": norm, "options": opts})
            return _convert(row)

    def list(self, *, namespace: str | None = None, kind: str | None = None) -> list[Target]:
        """Targets, oldest first; with `namespace`, those that apply to it (its own and the global ones)."""
        q = select(M.PublishTarget).order_by(M.PublishTarget.id)
        if kind is not None:
            q = q.where(M.PublishTarget.kind == kind)
        with self.core.db.read() as s:
            rows = [_convert(r) for r in s.scalars(q)]
        return [t for t in rows if namespace is None or t.namespace in (None, namespace)]

    def remove(self, target_id: int) -> Target:
        """Remove a target by id. Raises Forbidden (not an unrestricted admin), NotFound."""
        self._admin("removing a publish target")
        with self.core.db.write() as s:
            row = s.get(M.PublishTarget, target_id)
            if row is None:
                raise NotFound(f"no publish target with id {target_id}", id=target_id,
                               hint="list them: adapter-registry target ls")
            t = _convert(row)
            s.delete(row)
            C.record(s, self.core.actor, "target.remove", f"{t.namespace or '*'}:{t.kind}:{t.url}",
                     {"id": t.id, "namespace": t.namespace, "kind": t.kind, "url": t.url})
            return t

    def matching(self, name: str, url: str, *, kind: str = "publish") -> Target | None:
        """The most specific target of `name`'s namespace (or a global one) that `url` is under, or None."""
        p = place(url)
        found = [t for t in self.list(namespace=namespace_of(name), kind=kind) if _under_url(p, t.url)]
        # the deepest root wins, a namespace's own before a global one of the same depth
        return max(found, key=lambda t: (len(place(t.url).parts), t.namespace is not None), default=None)

    # -- the rules ---------------------------------------------------------------------------------
    def check_publish(self, name: str, url: str) -> Target | None:
        """May this caller publish version(s) of `name` to `url`? Returns the target that allows it
        (None for an unrestricted admin or the local operator, who need none).

        Raises:
            InvalidInput: the URL is not understood
            Forbidden: the URL is inside the registry's own folders, or under no target of the
                namespace (and the caller is not an unrestricted admin)
        """
        core = self.core
        p = place(url)
        ns = namespace_of(name)
        token = core.token
        if core.is_operator:
            refuse_own_folders(core.settings, url)
            return self.matching(name, url)
        refusal = Forbidden(f"{url} is not under a publish target of {_of(ns)}", namespace=ns,
                            hint="ask an admin to add one: adapter-registry target add URL --namespace NS")
        if token is not None and not token.owns(name):
            raise Forbidden(f"token {token.name!r} is limited to {token.namespace}/*, not {name!r}",
                            namespace=token.namespace)
        if is_protected(p, core.settings):
            raise refusal  # the same words as "no target": nothing about where the registry lives
        t = self.matching(name, url)
        if t is None:
            raise refusal
        return t

    def check_base_path(self, name: str, path: str) -> Path:
        """The folder (symlinks resolved) a caller may register base model `name` from.

        An unrestricted admin may name any folder but the registry's own; anyone else only one
        under a base root of the name's namespace, and is told the same thing whatever is wrong
        (missing, a file, unreadable, outside the roots), so that the answer maps no file system.

        Raises:
            Forbidden: as above
        """
        core = self.core
        ns = namespace_of(name)
        if core.is_operator:
            p = dir_place(path)
            if is_protected(p, core.settings):
                raise Forbidden(f"{path} is inside the registry's own home, store or cache", path=path)
            return Path("/" + "/".join(p.parts))
        refusal = Forbidden(f"path is not under a base root of {_of(ns)}", namespace=ns,
                            hint="ask an admin to add one: adapter-registry target add dir:///root --kind base")
        try:
            p = dir_place(path)
        except InvalidInput:
            raise refusal from None
        folder = Path("/" + "/".join(p.parts))
        roots = [place(t.url) for t in self.list(namespace=ns, kind="base")]
        if (not any(under(p, r) for r in roots) or is_protected(p, core.settings) or not folder.is_dir()
                or not os.access(folder, os.R_OK | os.X_OK)):
            raise refusal
        return folder

    def hub_private(self, name: str, url: str) -> bool:
        """Whether a Hub repo created for `url` is private: yes, unless the target allowing it says not."""
        t = self.matching(name, url)
        return bool((t.options if t else {}).get("private", True))


def refuse_own_folders(settings: Settings, url: str) -> None:
    """Raise Forbidden when `url` is inside the registry's own home, store or cache (for everyone)."""
    if is_protected(place(url), settings):
        raise Forbidden(f"{url} is inside the registry's own home, store or cache: publish somewhere else")


def _of(ns: str | None) -> str:
    return f"namespace {ns}" if ns else "names without a namespace"


def _url_of(p: Place) -> str:
    """The normalised URL of a place, as stored."""
    if p.scheme == "dir":
        return "dir:///" + "/".join(p.parts)
    return f"{p.scheme}://" + "/".join(p.parts)


def _under_url(p: Place, root_url: str) -> bool:
    try:
        return under(p, place(root_url))
    except InvalidInput:
        return False

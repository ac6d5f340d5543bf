"""nginx sites: one file per site, tested with the real ``nginx -t`` before it goes live.

A site renders to ``/etc/nginx/sites-available/NAME`` plus a symlink in
``sites-enabled`` (Debian), or ``/etc/nginx/conf.d/NAME.conf`` on hosts without
``sites-enabled``. The file starts with ``# Managed by reconciler``: its mark.

State per site: ``content`` (SHA-256 of the file), ``enabled`` (linked),
``nginx`` (``running``; ``reload pending`` when the file on disk is not what nginx
has loaded) and, for self-signed TLS, ``key_pair`` (``present``). All sites are
observed with one command, which also lists the enabled sites the reconciler did
not write (Debian's ``default``): those are reported by ``unmanaged`` and never
touched, and neither is any site file without the header when it is pruned.

Every write is followed by ``nginx -t`` on the host; a refused candidate is
rolled back at once (see ``nginx_host.INSTALL``), the change fails quoting
nginx's message, and nginx is not reloaded for it. ``finish`` reloads nginx once
per run (or starts it when it is down) and waits until new workers prove the
new configuration is loaded. A change to a ``files`` resource holding a site's
certificate or key triggers that reload too, since nginx reads them only then.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence, Set
from typing import Any

from reconciler.errors import ApplyError, CommandFailed
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, State
from reconciler.sensitive import KNOWN_AFTER_APPLY, KnownAfterApply, Sensitive

from .host import (
    ALREADY_BROKEN,
    GENERATE_SELF_SIGNED,
    INSTALL,
    NOT_OURS,
    OBSERVE,
    REFUSED,
    RELOAD,
    REMOVE,
    NginxFacts,
    parse_observation,
    site_path,
)
from .model import NginxSite, validate_site
from .render import render_site, self_signed_paths, source_of_line

__all__ = ["NginxSite", "NginxSitesProvider"]

_FACTS = "nginx_sites.facts"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")

RUNNING = "running"
RELOAD_PENDING = "reload pending"
PRESENT = "present"
NO_LINK = ("none", "conf.d")


def _self_signed(site: NginxSite) -> bool:
    return site.tls is not None and site.tls.self_signed


def _subject(site: NginxSite) -> tuple[str, str]:
    """Common name and subjectAltName for a self-signed certificate."""
    names = [n for n in site.server_names if _HOSTNAME.match(n) or _IP.match(n)]
    san = ",".join(("IP:" if _IP.match(n) else "DNS:") + n for n in names)
    return (names[0] if names else site.name)[:64], san


# nginx messages whose fix is not obvious from the message itself.
HINTS = {
    "duplicate default server": "another enabled site (often Debian's sites-enabled/default) is already "
                                "the default_server for that port; remove it or drop default_server from "
                                "this site",
    "server_names_hash": "a server name is longer than nginx's default hash bucket allows; set "
                         "server_names_hash_bucket_size 128; in the http context (for example with a files "
                         "resource /etc/nginx/conf.d/server-names-hash.conf)",
}


_NGINX_AT = re.compile(r" in (/\S+):(\d+)\s*$", re.MULTILINE)


def spec_position_of_refusal(site: NginxSite, message: str) -> str:
    """Where in the spec the line nginx complains about comes from, as
    ``file:line:col (field)`` (the site's own position when the field cannot be told,
    or the line is in another file); "" when the site has no known position."""
    field: tuple[str | int, ...] = ()
    offset = 0
    for m in _NGINX_AT.finditer(message):
        if m.group(1).rsplit("/", 1)[-1] in (site.name, f"{site.name}.conf"):
            field, offset = source_of_line(site, int(m.group(2)))
            break
    where = site.spec_location(*field) if field else None
    if where is None:
        where = site.spec_location()
        field = ()
    if where is None:
        return ""
    if field == ("config",) and offset >= 0 and (pos := site.position("config")) is not None:
        # A block scalar's text starts on the line after its key.
        file, _, _ = where.rsplit(":", 2)
        where = f"{file}:{pos.line + 1 + offset}:{pos.column + 2}"
    shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in field).lstrip(".")
    return f"{where} ({shown})" if shown else where


def _nginx_error(exc: CommandFailed, what: str, site: NginxSite | None = None) -> ApplyError:
    """Turn INSTALL/REMOVE's exit codes into the operator's terms, quoting nginx. For a
    refused site, the message names the spec file, line and field its error came from
    (nginx names a line of the rendered file, which the operator never wrote)."""
    message = (exc.stderr or exc.stdout).strip()
    if exc.exit_code == REFUSED:
        hint = next((f"\nhint: {text}" for needle, text in HINTS.items() if needle in message), "")
        where = spec_position_of_refusal(site, message) if site is not None else ""
        at = f" (from {where})" if where else ""
        return ApplyError(f"nginx -t refused {what}{at}; the previous version stays in place and nginx was "
                          f"not reloaded:\n{message}{hint}")
    if exc.exit_code == ALREADY_BROKEN:
        return ApplyError(f"nginx's configuration is invalid even without {what}, so nothing was changed; "
                          f"fix this first:\n{message}")
    if exc.exit_code == NOT_OURS:
        return ApplyError(message)
    return ApplyError(f"could not apply {what}: {exc}")


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def site_states(facts: NginxFacts, ids: Sequence[str], with_secrets: Set[str] = frozenset()) -> dict[
        str, State | None]:
    """Each site's state from the observed facts (None: no site file and no link).
    ``with_secrets``: sites whose text embeds a secret; their hash is shown as sensitive."""
    out: dict[str, State | None] = {}
    for rid in ids:
        site = facts.sites.get(rid)
        if not facts.installed or site is None or (site.sha256 is None and site.link_kind in NO_LINK):
            out[rid] = None
            continue
        service = facts.service  # inactive, failed, ...
        if facts.running:
            service = RELOAD_PENDING if site.reload_pending else RUNNING
        state: State = {"content": site.sha256, "enabled": site.enabled, "nginx": service,
                        "path": site_path(facts.layout, rid), "managed": site.owned}
        if site.key_pair is not None:
            state["key_pair"] = site.key_pair
        if rid in with_secrets:
            state["content"] = Sensitive(site.sha256 or "")
        out[rid] = state
    return out


class NginxSitesProvider(Provider[NginxSite]):
    kind = "nginx_sites"
    model = NginxSite
    order = 50
    singleton = False
    description = ("nginx sites: reverse proxy, TLS, static files, rate limits; "
                   "tested with nginx -t before going live.")

    def resource_id(self, resource: NginxSite) -> str:
        return resource.name

    def validate(self, resource: NginxSite) -> list[Issue]:
        return validate_site(resource)

    def prerequisites(self, resource: NginxSite) -> list[Prerequisite]:
        """nginx itself; the openssl command makes a self-signed key pair."""
        return ["packages:nginx", *(["packages:openssl"] if _self_signed(resource) else [])]

    def triggers(self, resource: NginxSite) -> list[str]:
        """nginx reads certificates only on reload: a managed certificate or key file
        that changes in a run must reload nginx even when the site file did not change."""
        if resource.tls is None or resource.tls.self_signed:
            return []
        return [f"files:{path}" for path in (resource.tls.certificate, resource.tls.key) if path]

    # --------------------------------------------------------------------- reading
    def render(self, resource: NginxSite, ctx: HostContext) -> str | Sensitive | KnownAfterApply:
        return ctx.reveal(render_site(resource))

    def desired(self, resource: NginxSite, ctx: HostContext) -> State:
        # validate() saw the spec before ${var} substitution; a variable's value must
        # not smuggle nginx syntax in either.
        issues = validate_site(resource)
        if issues:
            raise ApplyError(f"site {resource.name!r} after variable substitution: " + "; ".join(
                f"{'.'.join(map(str, i.path))}: {i.message}" for i in issues))
        text = self.render(resource, ctx)
        content: object
        if isinstance(text, KnownAfterApply):
            content = KNOWN_AFTER_APPLY
        elif isinstance(text, Sensitive):
            content = Sensitive(digest(text.reveal()))
        else:
            content = digest(text)
        state: State = {"content": content, "enabled": True, "nginx": RUNNING}
        if _self_signed(resource):
            state["key_pair"] = PRESENT
        return state

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, NginxSite]) -> dict[
            str, State | None]:
        args: list[str] = []
        for rid in ids:
            res = resources.get(rid)
            crt, key = self_signed_paths(res) if res is not None and _self_signed(res) else ("", "")
            args += [rid, crt, key]
        facts = parse_observation(ctx.transport.run(["sh", "-c", OBSERVE, "reconciler", *args]).out)
        ctx.scratch[_FACTS] = facts
        with_secrets = {rid for rid, res in resources.items() if "${secret:" in render_site(res)}
        return site_states(facts, ids, with_secrets)

    # --- plan display: the site file as a diff -----------------------------------------
    text_fields = frozenset({"content"})

    def desired_text(self, resource: NginxSite, field_name: str, ctx: HostContext) -> str | None:
        return render_site(resource) if field_name == "content" else None

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        path = actual.get("path")
        return path if field_name == "content" and isinstance(path, str) else None

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        facts = ctx.scratch.get(_FACTS)
        if not isinstance(facts, NginxFacts):
            return []
        return [f"nginx site {f.path}" + (" (default_server)" if f.default_server else "")
                for f in facts.enabled_files if not f.owned]

    # --------------------------------------------------------------------- changing
    def _facts(self, ctx: HostContext) -> NginxFacts:
        facts = ctx.scratch.get(_FACTS)
        if not isinstance(facts, NginxFacts):
            raise ApplyError("internal error: nginx sites were not observed before apply")
        if not facts.installed:
            raise ApplyError("nginx is not installed on this host (no nginx command on PATH); "
                             "install the nginx package first")
        return facts

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        facts = self._facts(ctx)
        name = item.change.id
        if item.change.action is Action.DELETE:
            try:
                ctx.transport.run_script(REMOVE, [facts.layout.value, name])
            except CommandFailed as exc:
                raise _nginx_error(exc, f"removing site {name!r}") from exc
            return
        assert isinstance(item.resource, NginxSite) and item.desired is not None
        site = item.resource
        actual: dict[str, Any] = item.actual or {}
        replace = item.change.action is Action.REPLACE
        if _self_signed(site) and (replace or actual.get("key_pair") != PRESENT):
            crt, key = self_signed_paths(site)
            cn, san = _subject(site)
            try:
                ctx.transport.run_script(GENERATE_SELF_SIGNED, [crt, key, cn, san, "1" if replace else "0"])
            except CommandFailed as exc:
                raise ApplyError(f"could not make a self-signed key pair for site {name!r}: "
                                 f"{(exc.stderr or str(exc)).strip()}") from exc
        if replace or actual.get("content") != item.desired["content"] or actual.get("enabled") is not True:
            text = self.render(site, ctx)
            if isinstance(text, KnownAfterApply):
                raise ApplyError("the site embeds a secret that does not exist on the host yet")
            raw = text.reveal() if isinstance(text, Sensitive) else text
            # Only nginx's master (root) reads site files, so one that embeds a secret
            # can be private to root.
            mode = "0600" if isinstance(text, Sensitive) else "0644"
            try:
                ctx.transport.run_script(INSTALL, [facts.layout.value, name, mode], stdin=raw.encode())
            except CommandFailed as exc:
                raise _nginx_error(exc, f"the new version of site {name!r}", site) from exc
        # Anything else (nginx stopped, a reload pending, a triggering certificate) is
        # settled by the one reload or start in finish.

    def finish(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        """One reload (or start) for the whole run, after every site was written."""
        if not items:
            return
        try:
            ctx.transport.run_script(RELOAD, [], timeout=120)
        except CommandFailed as exc:
            raise ApplyError((exc.stderr or str(exc)).strip()) from exc

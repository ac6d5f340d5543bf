"""The ``nginx`` kind (singleton, implied by ``nginx_sites``): the security snippet, the
main nginx.conf and the nginx.service sandbox drop-in described in ``globals``.

State: ``security_snippet``, ``main_config`` (managed only) and ``unit_hardening``
(SHA-256 of each file, None when absent), plus ``exposure`` (``systemd-analyze security``
of nginx.service now and with the planned drop-in) when the drop-in changes. Apply
writes the nginx files and tests them with ``nginx -t`` (rolled back when refused),
then installs the drop-in, which restarts nginx and keeps the drop-in only if nginx
still runs; otherwise nginx reloads once in ``finish``. Removing it (the last site left
the spec) puts the package's nginx.conf back and removes the snippet and the drop-in.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import ApplyError, CommandFailed
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, State

from ..common import dropin
from ..common.exposure import measure
from .globals import (
    DROPIN_NAME,
    HEADER_PREFIX,
    MAIN_ORIGINAL,
    MAIN_PATH,
    RESOURCE_ID,
    SNIPPET_PATH,
    UNIT,
    NginxGlobal,
    render_dropin,
    render_main,
    render_snippet,
    validate_global,
)
from .host import RELOAD

__all__ = ["NginxGlobal", "NginxGlobalProvider"]

_FACTS = "nginx.global.facts"
_EXPOSURE = "nginx.global.exposure"
REFUSED = 10

# Debian records each conffile's md5 as the package shipped it: equal means untouched.
OBSERVE = r"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
if command -v nginx >/dev/null 2>&1; then echo "installed yes"; else echo "installed no"; fi
if [ -d /etc/nginx/sites-enabled ]; then echo "layout debian"; else echo "layout confd"; fi
for f in SNIPPET MAIN DROPIN; do
  if [ -f "$f" ]; then set -- $(sha256sum < "$f"); echo "sha256 $f $1"; fi
done
first=; [ -f MAIN ] && IFS= read -r first < MAIN
case "$first" in "HEADER"*) echo "main ours" ;; *) echo "main theirs" ;; esac
shipped=$(dpkg-query -W -f='${Conffiles}\n' nginx-common nginx 2>/dev/null \
  | awk '$1 == "MAIN" { print $2; exit }')
if [ -z "$shipped" ] || [ ! -f MAIN ]; then echo "package unknown"
elif [ "$(md5sum < MAIN | cut -d' ' -f1)" = "$shipped" ]; then echo "package pristine"
else echo "package edited"; fi
[ -f ORIGINAL ] && echo "original kept"
exit 0
"""

# $1 snippet: write | remove | keep; $2 main: write | restore | keep. stdin: a tar with
# "snippet" and "main". Every changed file is put back when nginx -t refuses the result.
INSTALL = r"""
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
snip=$1; main=$2
work=$(mktemp -d /tmp/reconciler-nginx.XXXXXXXX)
trap 'rm -rf -- "$work"' EXIT
tar -x -C "$work" -f -
[ -e SNIPPET ] && cp -p -- SNIPPET "$work/snippet.prev"
[ -e MAIN ] && cp -p -- MAIN "$work/main.prev"
put() {  # $1 source, $2 target: atomically, mode 0644
  tmp=$(mktemp -- "$2.reconciler.XXXXXXXX"); cat -- "$1" > "$tmp"; chmod 0644 "$tmp"; mv -f -- "$tmp" "$2"
}
made_original=0
case $snip in
  write) mkdir -p -- "$(dirname -- SNIPPET)"; put "$work/snippet" SNIPPET ;;
  remove) rm -f -- SNIPPET ;;
esac
case $main in
  write) if [ ! -e ORIGINAL ] && [ -e MAIN ]; then cp -p -- MAIN ORIGINAL; made_original=1; fi
         put "$work/main" MAIN ;;
  restore) if [ -e ORIGINAL ]; then cp -p -- ORIGINAL MAIN; fi ;;
esac
if out=$(nginx -t 2>&1); then
  [ "$main" != restore ] || rm -f -- ORIGINAL
  exit 0
fi
if [ -e "$work/snippet.prev" ]; then cp -p -- "$work/snippet.prev" SNIPPET; else rm -f -- SNIPPET; fi
if [ -e "$work/main.prev" ]; then cp -p -- "$work/main.prev" MAIN; fi
[ $made_original = 0 ] || rm -f -- ORIGINAL
printf '%s\n' "$out" >&2
exit REFUSED
"""


# nginx's master stays active when its workers cannot start (a setuid() the sandbox
# forbids): the proof is a set of workers that are still the same a second later.
WORKERS_PROBE = r"""
m=$(systemctl show -p MainPID --value -- "$1")
[ -n "$m" ] && [ "$m" != 0 ] || { echo "no main process" >&2; exit 1; }
first=$(cat "/proc/$m/task/$m/children" 2>/dev/null); sleep 1
second=$(cat "/proc/$m/task/$m/children" 2>/dev/null)
[ -n "$first" ] && [ "$first" = "$second" ] || { echo "nginx's worker processes do not stay up" >&2; exit 1; }
"""


def _fill(script: str) -> str:
    return (script.replace("SNIPPET", SNIPPET_PATH).replace("ORIGINAL", MAIN_ORIGINAL)
            .replace("MAIN", MAIN_PATH).replace("DROPIN", dropin.path(UNIT, DROPIN_NAME))
            .replace("HEADER", HEADER_PREFIX).replace("REFUSED", str(REFUSED)))


OBSERVE = _fill(OBSERVE)
INSTALL = _fill(INSTALL)


@dataclass
class GlobalFacts:
    installed: bool = False
    layout: str = "debian"
    digests: dict[str, str] | None = None   # path -> sha256:...
    main_ours: bool = False
    package: str = "unknown"                # pristine | edited | unknown
    original_kept: bool = False


def parse_facts(text: str) -> GlobalFacts:
    facts = GlobalFacts(digests={})
    assert facts.digests is not None
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["installed"] and len(parts) == 2:
            facts.installed = parts[1] == "yes"
        elif parts[:1] == ["layout"] and len(parts) == 2:
            facts.layout = parts[1]
        elif parts[:1] == ["sha256"] and len(parts) == 3:
            facts.digests[parts[1]] = "sha256:" + parts[2]
        elif parts[:1] == ["main"] and len(parts) == 2:
            facts.main_ours = parts[1] == "ours"
        elif parts[:1] == ["package"] and len(parts) == 2:
            facts.package = parts[1]
        elif parts == ["original", "kept"]:
            facts.original_kept = True
    return facts


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _archive(files: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def actual_state(facts: GlobalFacts, resource: NginxGlobal | None) -> State | None:
    """None when none of the three files is the reconciler's."""
    digests = facts.digests or {}
    snippet = digests.get(SNIPPET_PATH)
    unit = digests.get(dropin.path(UNIT, DROPIN_NAME))
    main = digests.get(MAIN_PATH) if facts.main_ours else None
    if not facts.installed or (snippet is None and unit is None and main is None):
        return None
    state: State = {"security_snippet": snippet, "unit_hardening": unit}
    if resource is None or resource.main_config == "managed" or main is not None:
        state["main_config"] = main
    return state


class NginxGlobalProvider(Provider[NginxGlobal]):
    kind = "nginx"
    model = NginxGlobal
    order = 45  # before nginx_sites: sites are tested against the global settings
    singleton = True
    implied_by = ("nginx_sites",)
    description = ("nginx's host-wide TLS and security settings and the nginx.service sandbox; applies "
                   "with its defaults wherever nginx_sites are, declare it to change them.")

    def resource_id(self, resource: NginxGlobal) -> str:
        return RESOURCE_ID

    def validate(self, resource: NginxGlobal) -> list[Issue]:
        return validate_global(resource)

    def prerequisites(self, resource: NginxGlobal) -> list[Prerequisite]:
        return ["packages:nginx"]

    # ------------------------------------------------------------------ reading
    def desired(self, resource: NginxGlobal, ctx: HostContext) -> State:
        dropin_text = render_dropin(resource)
        state: State = {"security_snippet": digest(render_snippet(resource)),
                        "unit_hardening": digest(dropin_text) if dropin_text is not None else None}
        if resource.main_config == "managed":
            state["main_config"] = digest(render_main(resource))
        after = ctx.scratch.get(_EXPOSURE, {}).get("after")
        if after is not None:
            state["exposure"] = after
        return state

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, NginxGlobal]) -> dict[
            str, State | None]:
        facts = parse_facts(ctx.transport.run(["sh", "-c", OBSERVE]).out)
        ctx.scratch[_FACTS] = facts
        resource = resources.get(RESOURCE_ID)
        state = actual_state(facts, resource)
        ctx.scratch[_EXPOSURE] = {}
        if resource is not None and facts.installed:
            self._score(ctx, resource, state)
        return {rid: state if rid == RESOURCE_ID else None for rid in ids}

    @staticmethod
    def _score(ctx: HostContext, resource: NginxGlobal, state: State | None) -> None:
        """nginx.service's exposure now and with the planned drop-in, only when the
        drop-in is to change (a no-op plan runs no extra command)."""
        text = render_dropin(resource)
        planned = digest(text) if text is not None else None
        if (state or {}).get("unit_hardening") == planned:
            return
        # An empty drop-in of the same name shadows the installed one: "no drop-in".
        scores = measure(ctx.transport, dropins={UNIT: {DROPIN_NAME: text or ""}}, live=[UNIT])
        before, after = scores.before.get(UNIT), scores.after.get(UNIT)
        if state is None and before is not None and after is not None:
            after = f"{after} (now {before})"  # a create shows no old values: say it here
        ctx.scratch[_EXPOSURE] = {"before": before, "after": after}
        if state is not None and before is not None:
            state["exposure"] = before

    # --- plan display: the snippet, the drop-in and nginx.conf as diffs --------------
    text_fields = frozenset({"security_snippet", "unit_hardening", "main_config"})

    def desired_text(self, resource: NginxGlobal, field_name: str, ctx: HostContext) -> str | None:
        if field_name == "security_snippet":
            return render_snippet(resource)
        if field_name == "unit_hardening":
            return render_dropin(resource)
        return render_main(resource) if field_name == "main_config" else None

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return {"security_snippet": SNIPPET_PATH, "unit_hardening": dropin.path(UNIT, DROPIN_NAME),
                "main_config": MAIN_PATH}.get(field_name)

    # ------------------------------------------------------------------ changing
    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        facts = ctx.scratch.get(_FACTS)
        if not isinstance(facts, GlobalFacts):
            raise ApplyError("internal error: nginx was not observed before apply")
        if not facts.installed:
            raise ApplyError("nginx is not installed on this host (no nginx command on PATH); "
                             "install the nginx package first")
        actual = item.actual or {}
        if item.change.action is Action.DELETE:
            self._files(ctx, "remove", "restore" if facts.main_ours else "keep", {})
            if actual.get("unit_hardening") is not None:
                dropin.install(ctx.transport, UNIT, DROPIN_NAME, None, what="removing the sandbox drop-in")
            ctx.scratch["nginx.global.reload"] = True
            return
        assert isinstance(item.resource, NginxGlobal) and item.desired is not None
        g, desired = item.resource, item.desired
        snippet = "write" if actual.get("security_snippet") != desired["security_snippet"] else "keep"
        main = "keep"
        if g.main_config == "managed" and actual.get("main_config") != desired["main_config"]:
            if not facts.main_ours:
                self._check_adoptable(facts)
            main = "write"
        elif g.main_config == "keep" and facts.main_ours:
            main = "restore"
        if snippet != "keep" or main != "keep":
            self._files(ctx, snippet, main, {"snippet": render_snippet(g), "main": render_main(g)})
        restarted = False
        if actual.get("unit_hardening") != desired["unit_hardening"]:
            what = f"the sandbox drop-in {dropin.path(UNIT, DROPIN_NAME)}"
            outcome = dropin.install(ctx.transport, UNIT, DROPIN_NAME, render_dropin(g), what=what,
                                     probe=WORKERS_PROBE)
            restarted = outcome == "restarted"
        if (snippet != "keep" or main != "keep") and not restarted:
            ctx.scratch["nginx.global.reload"] = True

    @staticmethod
    def _check_adoptable(facts: GlobalFacts) -> None:
        if facts.layout != "debian":
            raise ApplyError("main_config: managed writes Debian's nginx.conf layout, and this host has no "
                             "/etc/nginx/sites-enabled; set nginx.main_config: keep")
        if facts.package == "edited":
            raise ApplyError(f"{MAIN_PATH} was edited by hand (it differs from the package's), so the "
                             "reconciler will not replace it. Move those settings into /etc/nginx/conf.d/ "
                             "and restore the package's file, or set nginx.main_config: keep")

    @staticmethod
    def _files(ctx: HostContext, snippet: str, main: str, texts: Mapping[str, str]) -> None:
        try:
            ctx.transport.run_script(INSTALL, [snippet, main], stdin=_archive(texts or {"snippet": ""}))
        except CommandFailed as exc:
            message = (exc.stderr or exc.stdout).strip()
            if exc.exit_code == REFUSED:
                raise ApplyError(f"nginx -t refused the security settings, so the previous files are back "
                                 f"and nginx was not reloaded:\n{message}") from exc
            raise ApplyError(f"could not write nginx's security settings: {exc}") from exc

    def finish(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        if not ctx.scratch.pop("nginx.global.reload", False):
            return
        try:
            ctx.transport.run_script(RELOAD, [], timeout=120)
        except CommandFailed as exc:
            raise ApplyError((exc.stderr or str(exc)).strip()) from exc

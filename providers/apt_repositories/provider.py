"""apt repositories: deb822 ``.sources`` files with their signing key inside.

State per repository: ``content`` (SHA-256 of the file). The file starts with
``# Managed by reconciler``: only such files are ever deleted (prune, ``state:
absent``). Other source files on the host are listed as unmanaged, never touched.

A new or changed file is first used *alone* for an ``apt-get update`` (fetch and
signature check) and only then installed; if the host's whole apt configuration
no longer parses with it, the previous file comes back. So a typo, an unreachable
URI or a wrong key fails this change, quoting apt, and leaves apt working; and
the new repository's package lists are already there for the ``packages`` kind,
which runs after this kind in the same apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from reconciler.errors import ApplyError, CommandFailed
from reconciler.plan import Action, FieldChange
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, State

from ..packages.model import parse_duration
from .host import BREAKS_CONFIG, INSTALL, NOT_OURS, OBSERVE, REFUSED_BY_APT, REMOVE
from .model import AptRepository, validate_repository
from .render import read_key_file, render_sources, sources_path

__all__ = ["AptRepositoriesProvider", "AptRepository"]

_OTHERS = "apt_repositories.others"
LOCK_TIMEOUT = parse_duration("5m")


class AptRepositoriesProvider(Provider[AptRepository]):
    kind = "apt_repositories"
    model = AptRepository
    order = 1
    description = "apt repositories (deb822 .sources files with their signing key), checked by apt first."

    def resource_id(self, resource: AptRepository) -> str:
        return resource.name

    def validate(self, resource: AptRepository) -> list[Issue]:
        issues = validate_repository(resource)
        if resource.key_file is not None and not issues:
            try:
                read_key_file(resource)
            except ApplyError as exc:
                issues.append(Issue(("key_file",), str(exc)))
        return issues

    def desired(self, resource: AptRepository, ctx: HostContext) -> State | None:
        if resource.state == "absent":
            return None
        text = render_sources(resource)
        return {"content": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}

    def observe(self, ctx: HostContext, ids: Sequence[str],
                resources: Mapping[str, AptRepository]) -> dict[str, State | None]:
        out = ctx.transport.run_script(OBSERVE, list(ids), timeout=60).out
        found: dict[str, State] = {}
        others: list[str] = []
        for line in out.splitlines():
            parts = line.split(" ")
            if parts[0] == "@repo" and len(parts) == 4:
                found[parts[1]] = {"content": f"sha256:{parts[2]}", "managed": parts[3] == "1"}
            elif parts[0] == "@other" and len(parts) == 2:
                others.append(parts[1])
        ctx.scratch[_OTHERS] = others
        return {rid: found.get(rid) for rid in ids}

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        ours = {sources_path(rid) for rid in observed}
        return [f"apt source {path}" for path in ctx.scratch.get(_OTHERS, []) if path not in ours]

    def compare(self, desired: State, actual: State) -> list[FieldChange]:
        return super().compare(desired, {k: v for k, v in actual.items() if k != "managed"})

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        name = item.change.id
        if item.change.action is Action.DELETE:
            try:
                ctx.transport.run_script(REMOVE, [name], timeout=60)
            except CommandFailed as exc:
                raise ApplyError((exc.stderr or str(exc)).strip()) from exc
            return
        assert isinstance(item.resource, AptRepository)
        text = render_sources(item.resource)
        try:
            ctx.transport.run_script(INSTALL, [name, str(LOCK_TIMEOUT)], stdin=text.encode(),
                                     timeout=LOCK_TIMEOUT + 600)
        except CommandFailed as exc:
            detail = (exc.stderr or exc.stdout).strip()
            if exc.exit_code == REFUSED_BY_APT:
                raise ApplyError(f"apt could not use repository {name} (fetching or verifying it failed); "
                                 f"it was not installed:\n{detail}") from exc
            if exc.exit_code == BREAKS_CONFIG:
                raise ApplyError(f"with repository {name} the host's apt configuration does not parse; "
                                 f"the previous state was restored:\n{detail}") from exc
            if exc.exit_code == NOT_OURS:
                raise ApplyError(detail) from exc
            raise ApplyError(f"could not install repository {name}: {exc}") from exc

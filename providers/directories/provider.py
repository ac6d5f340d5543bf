"""Directories: path, owner, group, mode.

Created, and given owner and mode, through descriptors (the host agent's
``ensure_dirs``): a directory swapped for a symlink is refused, never followed.
Pruning removes a directory the reconciler created only when it is empty
(``rmdir``): data is never deleted to satisfy a spec edit. A non-empty one is
reported and kept in the inventory, so the delete is retried on the next run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field

from reconciler.errors import ApplyError
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, Resource, State
from reconciler.transport.ops import DirEnsure

from ..common.checks import Mode, check_account, check_path, normalize_mode


class Directory(Resource):
    path: str = Field(description="Absolute path.")
    owner: str = Field(default="root", description="Owning user (a name).")
    group: str = Field(default="root", description="Owning group (a name).")
    mode: Mode = Field(default="0755", description='Permissions as a quoted octal string, e.g. "0750".')


class DirectoriesProvider(Provider[Directory]):
    kind = "directories"
    model = Directory
    order = 10
    description = "Directories with owner, group and mode."

    def resource_id(self, resource: Directory) -> str:
        return resource.path.rstrip("/")

    def validate(self, resource: Directory) -> list[Issue]:
        return [*check_path(resource.path), *check_account(resource.owner, "owner"),
                *check_account(resource.group, "group")]

    def desired(self, resource: Directory, ctx: HostContext) -> State:
        return {"type": "directory", "owner": resource.owner, "group": resource.group,
                "mode": normalize_mode(resource.mode)}

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Directory]) -> dict[
            str, State | None]:
        stats = ctx.transport.stat(ids)
        out: dict[str, State | None] = {}
        for rid in ids:
            st = stats.get(rid)
            if st is None:
                out[rid] = None
            elif st.error is not None:
                out[rid] = {"type": "refused", "error": st.error}
            else:
                out[rid] = {"type": st.type, "owner": st.owner, "group": st.group, "mode": st.mode}
        return out

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        change = item.change
        if change.action is Action.DELETE:
            # rmdir: only an empty directory goes; the host's error says so otherwise.
            ctx.writes.remove(change.address, change.id, "directory")
            return
        assert isinstance(item.resource, Directory)
        res = item.resource
        if item.actual is not None and item.actual.get("type") == "refused":
            raise ApplyError(str(item.actual.get("error")))
        if item.actual is not None and item.actual.get("type") != "directory":
            raise ApplyError(f"{change.id} exists and is a {item.actual.get('type')}, not a directory; "
                             "the reconciler will not replace it")
        ctx.writes.ensure_dir(change.address,
                              DirEnsure(change.id, res.owner, res.group, normalize_mode(res.mode)))

    # --- plan display: a change apply would refuse ---------------------------------------
    def refusal(self, item: ApplyItem) -> str | None:
        kind = (item.actual or {}).get("type")
        if item.actual is None or kind == "directory":
            return None
        return (f"{item.change.id} is a {kind} on the host and the spec wants a directory; the "
                f"reconciler never replaces a {kind} with a directory (move it away by hand, then apply)")

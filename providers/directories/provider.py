"""Directories: path, owner, group, mode.

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

from ..common.checks import (
    STAT_FORMAT,
    Mode,
    check_account,
    check_path,
    file_type,
    normalize_mode,
    parse_stat_lines,
)

OBSERVE = 'stat --printf "$0" -- "$@" 2>/dev/null; exit 0'

APPLY = r"""
set -eu
path=$1; owner=$2; group=$3; mode=$4
if [ -e "$path" ] && [ ! -d "$path" ]; then echo "$path exists and is not a directory" >&2; exit 3; fi
mkdir -p -- "$path"
chown -- "$owner:$group" "$path"
chmod -- "$mode" "$path"
"""


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
        if not ids:
            return {}
        result = ctx.transport.run(["sh", "-c", OBSERVE, STAT_FORMAT, *ids])
        stats = parse_stat_lines(result.out)
        out: dict[str, State | None] = {}
        for rid in ids:
            st = stats.get(rid)
            out[rid] = None if st is None else {"type": file_type(st["type"]), "owner": st["owner"],
                                                 "group": st["group"], "mode": st["mode"]}
        return out

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        change = item.change
        if change.action is Action.DELETE:
            result = ctx.transport.run(["rmdir", "--", change.id], check=False)
            if result.exit_code != 0:
                raise ApplyError(f"not removed: {result.err.strip() or 'rmdir failed'} "
                                 "(only empty directories are pruned; its contents are left alone)")
            return
        assert isinstance(item.resource, Directory)
        res = item.resource
        if item.actual is not None and item.actual.get("type") != "directory":
            raise ApplyError(f"{change.id} exists and is a {item.actual.get('type')}, not a directory; "
                             "the reconciler will not replace it")
        ctx.transport.run_script(APPLY, [change.id, res.owner, res.group, normalize_mode(res.mode)])

    # --- plan display: a change apply would refuse ---------------------------------------
    def refusal(self, item: ApplyItem) -> str | None:
        kind = (item.actual or {}).get("type")
        if item.actual is None or kind == "directory":
            return None
        return (f"{item.change.id} is a {kind} on the host and the spec wants a directory; the "
                f"reconciler never replaces a {kind} with a directory (move it away by hand, then apply)")

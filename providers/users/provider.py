"""System users and groups: the accounts services and data directories belong to.

Observed with one ``getent`` call for all users and one for all groups. Only
accounts the reconciler created are pruned (``userdel``, never removing the
home directory: data outlives an account).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field

from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, Resource, State

from ..common.checks import check_account

OBSERVE = r"""
getent passwd "$@" 2>/dev/null
echo "--groups--"
for u in "$@"; do id -Gn -- "$u" 2>/dev/null | sed "s/^/$u:/" ; done
exit 0
"""


class User(Resource):
    name: str = Field(description="Login name.")
    system: bool = Field(default=True, description="A system account (uid below 1000, no aging).")
    home: str | None = Field(default=None,
                             description="Home directory (default: /nonexistent for system users).")
    shell: str = Field(default="/usr/sbin/nologin", description="Login shell.")
    groups: list[str] = Field(default_factory=list, description="Supplementary groups (must exist).")
    comment: str = Field(default="", description="The GECOS field (a full name or what the account is for).")


class UsersProvider(Provider[User]):
    kind = "users"
    model = User
    order = 5
    description = "System users (with a primary group of the same name)."

    def resource_id(self, resource: User) -> str:
        return resource.name

    def validate(self, resource: User) -> list[Issue]:
        issues = check_account(resource.name, "name")
        for i, g in enumerate(resource.groups):
            issues += [Issue(("groups", i), x.message) for x in check_account(g, "groups")]
        if resource.home is not None and not resource.home.startswith("/"):
            issues.append(Issue(("home",), "must be an absolute path"))
        return issues

    def _home(self, resource: User) -> str:
        return resource.home or ("/nonexistent" if resource.system else f"/home/{resource.name}")

    def desired(self, resource: User, ctx: HostContext) -> State:
        return {"home": self._home(resource), "shell": resource.shell,
                "groups": sorted(set(resource.groups)), "comment": resource.comment}

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, User]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        out: dict[str, State | None] = dict.fromkeys(ids)
        result = ctx.transport.run(["sh", "-c", OBSERVE, "reconciler", *ids])
        passwd, _, groups_part = result.out.partition("--groups--\n")
        memberships: dict[str, list[str]] = {}
        for line in groups_part.splitlines():
            user, _, names = line.partition(":")
            # id -Gn lists the primary group first; supplementary groups are the rest.
            memberships[user] = names.split()[1:]
        for line in passwd.splitlines():
            parts = line.split(":")
            if len(parts) != 7 or parts[0] not in out:
                continue
            name, _pw, uid, _gid, gecos, home, shell = parts
            out[name] = {"uid": int(uid), "home": home, "shell": shell,
                         "groups": sorted(memberships.get(name, [])), "comment": gecos.split(",")[0]}
        return out

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        name = item.change.id
        if item.change.action is Action.DELETE:
            ctx.transport.run(["userdel", "--", name])
            return
        assert isinstance(item.resource, User)
        res = item.resource
        groups = ",".join(sorted(set(res.groups)))
        if item.change.action is Action.CREATE:
            argv = ["useradd", "--user-group", "--home-dir", self._home(res), "--shell", res.shell,
                    "--comment", res.comment, "--no-create-home"]
            if res.system:
                argv.append("--system")
            if groups:
                argv += ["--groups", groups]
            ctx.transport.run([*argv, "--", name])
            return
        argv = ["usermod", "--home", self._home(res), "--shell", res.shell, "--comment", res.comment,
                "--groups", groups]
        ctx.transport.run([*argv, "--", name])

"""Generated secrets: random values made once by the reconciler and kept on the host, in a 0600 file.

The value is drawn from the operating system's CSPRNG (Python's ``secrets``) when
it is first made, written straight into its 0600 file through the host agent
(descriptor-safe, never through a symlink a non-root user planted), never
regenerated unless asked (``reconcile apply --replace secrets:NAME``), and only
ever held as ``Sensitive`` in this process. Other resources use it as ``${secret:NAME}``.
Secrets are never pruned: deleting a database password because a line left the
spec would be a disaster, so a removed secret is released and left in place.

The reconciler keeps its own copy of every value it generated in
``/var/lib/reconciler/secrets/NAME`` (root, 0600). The value is in use (a database
was initialised with it), so when the secret file is deleted or edited by hand the
file is restored from that copy, never regenerated: only ``--replace`` rotates.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from reconciler.errors import ApplyError
from reconciler.interpolate import NAME
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, Resource, State
from reconciler.sensitive import Sensitive
from reconciler.transport.ops import DirEnsure, FileWrite, PathError, ReadFiles, Stat

from ..common.checks import Mode, check_account, check_path, normalize_mode

ALPHABETS = {
    "alphanumeric": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "hex": "0123456789abcdef",
    "base64url": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "printable": "".join(chr(c) for c in range(33, 127) if chr(c) not in "\"'\\`$"),
}

KEPT_DIR = "/var/lib/reconciler/secrets"

class Secret(Resource):
    name: str = Field(description="Referenced as ${secret:NAME}.")
    path: str = Field(description="File on the host that holds the value.")
    length: int = Field(default=32, description="Number of characters.")
    alphabet: Literal["alphanumeric", "hex", "base64url", "printable"] = Field(
        default="alphanumeric", description="Characters the generated value is drawn from.")
    owner: str = Field(default="root", description="Owning user of the file (a name).")
    group: str = Field(default="root", description="Owning group of the file (a name).")
    mode: Mode = Field(default="0600", description='Permissions of the file as a quoted octal string.')


class SecretsProvider(Provider[Secret]):
    kind = "secrets"
    model = Secret
    order = 15
    provides_secrets = True
    prunable = False
    description = "Random secrets generated once, kept on the host, never shown; use them as ${secret:NAME}."

    def resource_id(self, resource: Secret) -> str:
        return resource.name

    def validate(self, resource: Secret) -> list[Issue]:
        issues = [*check_path(resource.path), *check_account(resource.owner, "owner"),
                  *check_account(resource.group, "group")]
        if not NAME.match(resource.name):
            issues.append(Issue(("name",), "use letters, digits, '_', '-' and '.'"))
        if not 8 <= resource.length <= 4096:
            issues.append(Issue(("length",), "must be between 8 and 4096"))
        elif resource.length < 16:
            issues.append(Issue(("length",), "fewer than 16 characters is weak for a generated secret",
                                warning=True))
        if int(resource.mode, 8) & 0o007:
            issues.append(Issue(("mode",), "a secret file must not be readable by others"))
        return issues

    def desired(self, resource: Secret, ctx: HostContext) -> State:
        return {"type": "file", "owner": resource.owner, "group": resource.group,
                "mode": normalize_mode(resource.mode), "kept_copy": "matches"}

    @staticmethod
    def kept_path(name: str) -> str:
        return f"{KEPT_DIR}/{name}"

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Secret]) -> dict[
            str, State | None]:
        # Secrets that left the spec have no known path here; they are never pruned anyway.
        paths = {rid: resources[rid].path for rid in ids if rid in resources}
        out: dict[str, State | None] = dict.fromkeys(ids)
        if not paths:
            return out
        kept_paths = {rid: self.kept_path(rid) for rid in paths}
        stats, contents = ctx.transport.batch([Stat(list(paths.values())),
                                              ReadFiles([*paths.values(), *kept_paths.values()])])

        def text(path: str) -> str | None:
            data = contents.get(path)
            if data is None or isinstance(data, PathError):
                return None
            return str(data.decode("utf-8", "replace").rstrip("\n"))

        for rid, path in paths.items():
            st = stats.get(path)
            copy = text(kept_paths[rid])
            if st is None:
                if copy is not None:  # deleted by hand; the kept copy brings the same value back
                    out[rid] = {"type": "absent", "kept_copy": "present", "value": Sensitive(copy)}
                continue
            if st.error is not None:
                out[rid] = {"type": "refused", "error": st.error}
                continue
            current = text(path) or ""
            status = "missing" if copy is None else "matches" if copy == current else "differs"
            out[rid] = {"type": st.type, "owner": st.owner, "group": st.group, "mode": st.mode,
                        "kept_copy": status,
                        # What dependents must use: the kept copy wins, as apply restores it.
                        "value": Sensitive(copy if copy is not None else current)}
        return out

    def secret_values(self, observed: Mapping[str, State | None]) -> dict[str, Sensitive]:
        return {rid: state["value"] for rid, state in observed.items()
                if state is not None and isinstance(state.get("value"), Sensitive)
                and state["value"].reveal()}

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        """Queues the writes (``ctx.writes``): the kept copy first, then the secret file
        only if the copy was written, so a failure or crash never leaves a value in use
        that the reconciler has no copy of."""
        assert isinstance(item.resource, Secret)
        res = item.resource
        address = item.change.address
        mode = normalize_mode(res.mode)
        actual = item.actual
        if item.change.action is Action.REPLACE or actual is None:
            value = "".join(secrets.choice(ALPHABETS[res.alphabet]) for _ in range(res.length))
            self._write(ctx, address, res, value, mode, keep=True)
            return
        if actual.get("type") == "refused":
            raise ApplyError(str(actual.get("error")))
        if actual.get("type") not in ("file", "absent"):
            raise ApplyError(f"{res.path} exists and is a {actual.get('type')}, not a file")
        held = actual.get("value")
        if not isinstance(held, Sensitive):
            raise ApplyError(f"the value of secret {res.name} could not be read from the host")
        # Absent, edited by hand, or owner/mode off: the file is rewritten (by rename, never
        # chmod in place) with the value in use; regenerating would lock the database out.
        self._write(ctx, address, res, held.reveal(), mode, keep=actual.get("kept_copy") == "missing")

    def _write(self, ctx: HostContext, address: str, res: Secret, value: str, mode: str, *,
               keep: bool) -> None:
        after = None
        if keep:
            ctx.writes.ensure_dir(address, DirEnsure(KEPT_DIR, "root", "root", "0700"))
            after = ctx.writes.write(address, FileWrite(self.kept_path(res.name), value.encode(), "0600",
                                                        dir_mode="0700"))
        ctx.writes.write(address,
                         FileWrite(res.path, value.encode(), mode, res.owner, res.group, after=after))

"""Generated secrets: random values made once on the host, into a 0600 file.

The value is generated on the host itself (``/dev/urandom``), never regenerated
unless asked (``reconcile apply --replace secrets:NAME``), and only ever held
as ``Sensitive`` in this process. Other resources use it as ``${secret:NAME}``.
Secrets are never pruned: deleting a database password because a line left the
spec would be a disaster, so a removed secret is released and left in place.

The reconciler keeps its own copy of every value it generated in
``/var/lib/reconciler/secrets/NAME`` (root, 0600). The value is in use (a database
was initialised with it), so when the secret file is deleted or edited by hand the
file is restored from that copy, never regenerated: only ``--replace`` rotates.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from reconciler.errors import ApplyError
from reconciler.interpolate import NAME
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, Resource, State
from reconciler.sensitive import Sensitive

from ..common.checks import (
    STAT_FORMAT,
    Mode,
    check_account,
    check_path,
    file_type,
    normalize_mode,
    parse_stat_lines,
)

ALPHABETS = {
    "alphanumeric": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "hex": "0123456789abcdef",
    "base64url": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    "printable": "".join(chr(c) for c in range(33, 127) if chr(c) not in "\"'\\`$"),
}

KEPT_DIR = "/var/lib/reconciler/secrets"

# Arguments come in pairs: the secret file, then the reconciler's kept copy.
OBSERVE = r"""
fmt=$0
while [ $# -ge 2 ]; do
  p=$1; k=$2; shift 2
  if [ -f "$p" ]; then
    printf 'S\t'; stat --printf "$fmt" -- "$p"
    printf 'V\t%s\t%s\n' "$p" "$(base64 -w0 -- "$p")"
  fi
  if [ -f "$k" ]; then printf 'K\t%s\t%s\n' "$p" "$(base64 -w0 -- "$k")"; fi
done
exit 0
"""

# Put a value in place from the kept copy ($1 -> $2), or keep a copy of the file ($2 -> $1).
COPY = r"""
set -eu
src=$1; dst=$2; owner=$3; group=$4; mode=$5
dir=$(dirname -- "$dst")
[ -d "$dir" ] || mkdir -p -m 0700 -- "$dir"
umask 077
tmp=$(mktemp -- "$dir/.reconciler-secret.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat -- "$src" > "$tmp"
chown -- "$owner:$group" "$tmp"
chmod -- "$mode" "$tmp"
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$dst"
trap - EXIT
"""

# tr gets its set as octal escapes, so no alphabet character can mean anything to tr.
GENERATE = r"""
set -eu
path=$1; length=$2; set_=$3; owner=$4; group=$5; mode=$6; kept=$7
dir=$(dirname -- "$path")
[ -d "$dir" ] || mkdir -p -- "$dir"
umask 077
tmp=$(mktemp -- "$dir/.reconciler-secret.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
LC_ALL=C tr -dc "$set_" </dev/urandom | head -c "$length" > "$tmp" || true
[ "$(wc -c < "$tmp")" -eq "$length" ] || { echo "could not generate $length random characters" >&2; exit 1; }
chown -- "$owner:$group" "$tmp"
chmod -- "$mode" "$tmp"
sync -- "$tmp" 2>/dev/null || sync
# The kept copy first: a crash between the two renames leaves a copy to restore from.
mkdir -p -m 0700 -- "$(dirname -- "$kept")"
cp -- "$tmp" "$kept.tmp" && chown root:root "$kept.tmp" && chmod 0600 "$kept.tmp"
sync -- "$kept.tmp" 2>/dev/null || sync
mv -f -- "$kept.tmp" "$kept"
mv -f -- "$tmp" "$path"
trap - EXIT
"""


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
    description = "Random secrets generated once on the host; use them as ${secret:NAME}."

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
        args = [a for rid, path in paths.items() for a in (path, self.kept_path(rid))]
        result = ctx.transport.run(["sh", "-c", OBSERVE, STAT_FORMAT, *args])
        stats: dict[str, dict[str, str]] = {}
        values: dict[str, str] = {}
        kept: dict[str, str] = {}
        for line in result.out.splitlines():
            if line.startswith("S\t"):
                stats.update(parse_stat_lines(line[2:]))
            elif line.startswith(("V\t", "K\t")):
                tag, path, b64 = line.split("\t", 2)
                value = base64.b64decode(b64).decode("utf-8", "replace").rstrip("\n")
                (values if tag == "V" else kept)[path] = value
        for rid, path in paths.items():
            st = stats.get(path)
            copy = kept.get(path)
            if st is None:
                if copy is not None:  # deleted by hand; the kept copy brings the same value back
                    out[rid] = {"type": "absent", "kept_copy": "present", "value": Sensitive(copy)}
                continue
            current = values.get(path, "")
            status = "missing" if copy is None else "matches" if copy == current else "differs"
            out[rid] = {"type": file_type(st["type"]), "owner": st["owner"], "group": st["group"],
                        "mode": st["mode"], "kept_copy": status,
                        # What dependents must use: the kept copy wins, as apply restores it.
                        "value": Sensitive(copy if copy is not None else current)}
        return out

    def secret_values(self, observed: Mapping[str, State | None]) -> dict[str, Sensitive]:
        return {rid: state["value"] for rid, state in observed.items()
                if state is not None and isinstance(state.get("value"), Sensitive)
                and state["value"].reveal()}

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        assert isinstance(item.resource, Secret)
        res = item.resource
        mode = normalize_mode(res.mode)
        kept = self.kept_path(res.name)
        actual = item.actual
        if item.change.action is Action.REPLACE or actual is None:
            charset = "".join(f"\\{ord(c):03o}" for c in ALPHABETS[res.alphabet])
            ctx.transport.run_script(GENERATE,
                                     [res.path, str(res.length), charset, res.owner, res.group, mode, kept])
            return
        if actual.get("type") not in ("file", "absent"):
            raise ApplyError(f"{res.path} exists and is a {actual.get('type')}, not a file")
        if actual.get("type") == "absent" or actual.get("kept_copy") == "differs":
            # Restore the value in use; regenerating would lock the database out.
            ctx.transport.run_script(COPY, [kept, res.path, res.owner, res.group, mode])
            return
        if actual.get("kept_copy") == "missing":
            ctx.transport.run_script(COPY, [res.path, kept, "root", "root", "0600"])
        ctx.transport.run(["sh", "-c", 'chown -- "$1:$2" "$4" && chmod -- "$3" "$4"', "reconciler",
                           res.owner, res.group, mode, res.path])

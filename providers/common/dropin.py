"""Drop-ins for systemd units the reconciler does not own but runs (nginx.service from
Debian's package): ``/etc/systemd/system/UNIT.d/NAME.conf``, installed only as far as the
unit keeps working.

A unit's own file belongs to its package; a drop-in beside it is how systemd lets an
administrator add settings that survive package upgrades (``systemctl edit`` writes one
too). The reconciler owns exactly its drop-in file, marked by its first line.

Installing is a transaction on the host (``INSTALL``): the new drop-in replaces the old
one, systemd reloads, and a unit that was running is restarted (sandboxing applies when
a process starts, a reload is not enough) and must be active again a few seconds later.
If it is not, the previous drop-in (or none) is put back, systemd reloads, the unit is
restarted as it was, and the script exits ``REFUSED`` with the unit's journal, so the
caller can say which setting the program did not survive. A unit that was not running
is left stopped: whoever starts it next (nginx's reload-or-start) sees the new settings.
"""

from __future__ import annotations

from reconciler.errors import ApplyError, CommandFailed
from reconciler.transport.base import Transport

UNIT_DIR = "/etc/systemd/system"
MARK = "# Managed by reconciler"
REFUSED = 10

# $1 unit, $2 drop-in file name, $3 "install" (text on stdin) or "remove", $4 a probe
# (shell code, may be empty) that must succeed once the unit is active again.
INSTALL = r"""
set -u
unit=$1; name=$2; what=$3; probe=${4:-}
dir=UNIT_DIR/$unit.d; file=$dir/$name; prev=$dir/.$name.reconciler-previous
mkdir -p -- "$dir" || exit 1
rm -f -- "$prev"
had=0; if [ -e "$file" ]; then cp -p -- "$file" "$prev" || exit 1; had=1; fi
if [ "$what" = install ]; then
  tmp=$(mktemp -- "$dir/.$name.XXXXXXXX") || exit 1
  cat > "$tmp" && chmod 0644 "$tmp" && mv -f -- "$tmp" "$file" || { rm -f -- "$tmp"; exit 1; }
else
  rm -f -- "$file"
  rmdir -- "$dir" 2>/dev/null || true
fi
systemctl daemon-reload || exit 1
if ! systemctl is-active --quiet -- "$unit"; then rm -f -- "$prev"; echo "not running"; exit 0; fi
since=$(date '+%Y-%m-%d %H:%M:%S')
ok=1
systemctl restart -- "$unit" 2>&1 || ok=0
if [ $ok = 1 ]; then sleep 2; systemctl is-active --quiet -- "$unit" || ok=0; fi
if [ $ok = 1 ] && [ -n "$probe" ]; then sh -c "$probe" reconciler "$unit" 2>&1 || ok=0; fi
if [ $ok = 1 ]; then rm -f -- "$prev"; echo restarted; exit 0; fi
journal=$(journalctl -u "$unit" --since "$since" -n 15 --no-pager -o cat 2>/dev/null)
if [ $had = 1 ]; then mkdir -p -- "$dir"; mv -f -- "$prev" "$file"; else rm -f -- "$file"; fi
systemctl daemon-reload
systemctl restart -- "$unit" >/dev/null 2>&1 || echo "$unit did not start again after the rollback either" >&2
printf '%s\n' "$journal" >&2
exit REFUSED
"""
INSTALL = INSTALL.replace("UNIT_DIR", UNIT_DIR).replace("REFUSED", str(REFUSED))

def path(unit: str, name: str) -> str:
    return f"{UNIT_DIR}/{unit}.d/{name}"


def header(source: str) -> str:
    """The ownership mark a drop-in starts with; ``source`` names the spec object."""
    return (f"{MARK} ({source}). Edits here are overwritten on the next apply;\n"
            "# change the spec instead.\n")


def install(transport: Transport, unit: str, name: str, text: str | None, *, what: str,
            probe: str = "") -> str:
    """Install (or, with ``text`` None, remove) the drop-in; returns "restarted" or "not
    running". ``probe``: shell code ($1 is the unit) that must also succeed after the
    restart, for units whose main process can stay active while the real work fails.
    Raises ApplyError naming ``what`` when the unit did not survive it (the previous
    drop-in is back in place by then)."""
    args = [unit, name, "install" if text is not None else "remove", probe]
    try:
        result = transport.run_script(INSTALL, args, stdin=(text or "").encode(), timeout=180)
    except CommandFailed as exc:
        journal = "\n".join("  " + line for line in (exc.stderr or "").strip().splitlines())
        if exc.exit_code == REFUSED:
            raise ApplyError(f"{unit} did not keep running with {what}, so the previous drop-in is back and "
                             f"{unit} was restarted with it. Its journal:\n{journal}") from exc
        raise ApplyError(f"could not install {what} for {unit}: {exc}") from exc
    lines = result.out.strip().splitlines()
    return lines[-1] if lines else ""

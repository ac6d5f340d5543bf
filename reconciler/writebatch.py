"""File work that a provider queues during apply and the engine sends in one request.

A provider's ``apply`` calls ``ctx.writes.write(...)`` / ``ensure_dir`` / ``remove``
instead of touching the host; after the last ``apply`` of a run of changes (and
before ``finish``) the engine sends everything queued as ONE sequential batch:
directories first, then files (each written atomically), then removals. Every
queued item belongs to a change (its address); an item that fails fails only its
change, with the host's error, and the other changes of the run still apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.transport.base import Transport
from reconciler.transport.ops import DirEnsure, EnsureDirs, FileWrite, Op, Remove, WriteFiles


@dataclass
class WriteBatch:
    _dirs: list[tuple[str, DirEnsure]] = field(default_factory=list)
    _files: list[tuple[str, FileWrite]] = field(default_factory=list)
    _removes: list[tuple[str, str, str]] = field(default_factory=list)  # (address, path, kind)

    def ensure_dir(self, address: str, directory: DirEnsure) -> None:
        self._dirs.append((address, directory))

    def write(self, address: str, file: FileWrite) -> int:
        """Queue a file; returns its index, for ``FileWrite.after`` of a later file."""
        self._files.append((address, file))
        return len(self._files) - 1

    def remove(self, address: str, path: str, kind: str = "file") -> None:
        self._removes.append((address, path, kind))

    @property
    def addresses(self) -> set[str]:
        return ({a for a, _ in self._dirs} | {a for a, _ in self._files} | {a for a, _, _ in self._removes})

    def __bool__(self) -> bool:
        return bool(self._dirs or self._files or self._removes)

    def flush(self, transport: Transport) -> dict[str, str]:
        """Send the queue as one request; returns address -> error of the changes that
        failed. Transport errors propagate (the caller fails every queued change)."""
        dirs, files, removes = self._dirs, self._files, self._removes
        self._dirs, self._files, self._removes = [], [], []
        ops: list[Op[list[str | None]]] = []
        owners: list[list[str]] = []
        if dirs:
            ops.append(EnsureDirs([d for _, d in dirs]))
            owners.append([a for a, _ in dirs])
        if files:
            ops.append(WriteFiles([f for _, f in files]))
            owners.append([a for a, _ in files])
        for kind in dict.fromkeys(k for _, _, k in removes):
            chosen = [(a, p) for a, p, k in removes if k == kind]
            ops.append(Remove([p for _, p in chosen], kind=kind))
            owners.append([a for a, _ in chosen])
        if not ops:
            return {}
        failed: dict[str, str] = {}
        for addresses, errors in zip(owners, transport.batch(ops, sequential=True), strict=True):
            for address, error in zip(addresses, errors, strict=True):
                if error is not None and address not in failed:
                    failed[address] = error
        return failed

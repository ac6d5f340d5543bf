"""Files: content inline or from a template in the spec repo, owner, group, mode.

Writes are atomic and descriptor-safe (the host agent's ``write_files``: temporary
file, owner and mode on the descriptor, fsync, rename; never through a symlink a
non-root user could plant), and every file of a run goes in one request. Any
difference, owner or mode alone included, rewrites the file: a rename never
touches the old inode, so a hard link planted at the path cannot redirect a chmod.
Content is compared by SHA-256, so observing a thousand files is one ``stat``
request. Content that embeds a secret is ``Sensitive`` and shows as
``(sensitive)`` in plans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field, model_validator

from reconciler.errors import ApplyError, ReconcilerError
from reconciler.interpolate import SizeBudget, references, substitute_vars
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, Resource, State
from reconciler.sensitive import KNOWN_AFTER_APPLY, KnownAfterApply, Sensitive
from reconciler.specfiles import SpecFileError
from reconciler.transport.ops import FileWrite

from ..common.checks import Mode, check_account, check_path, normalize_mode


class File(Resource):
    path: str = Field(description="Absolute path.")
    content: str | None = Field(default=None,
                                description="Inline content; ${var} and ${secret:NAME} allowed.")
    template: str | None = Field(default=None, description=(
        "Template file, relative to the spec file; it must be inside the spec's repository "
        "(or directory), symbolic links included."))
    owner: str = Field(default="root", description="Owning user (a name).")
    group: str = Field(default="root", description="Owning group (a name).")
    mode: Mode = Field(default="0644", description='Permissions as a quoted octal string, e.g. "0640".')
    state: Literal["present", "absent"] = Field(
        default="present", description="absent: delete the file (or symlink) if it exists, owned or not.")

    @model_validator(mode="after")
    def _one_source(self) -> File:
        if self.state == "absent":
            if self.content is not None or self.template is not None:
                raise ValueError("a file with state: absent takes no content or template")
            return self
        if (self.content is None) == (self.template is None):
            raise ValueError("set exactly one of content or template")
        return self


def digest(content: str) -> str:
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


class FilesProvider(Provider[File]):
    kind = "files"
    model = File
    order = 20
    description = "Files with inline or templated content."

    def resource_id(self, resource: File) -> str:
        return resource.path

    def validate(self, resource: File) -> list[Issue]:
        issues = [*check_path(resource.path), *check_account(resource.owner, "owner"),
                  *check_account(resource.group, "group")]
        if resource.template is not None:
            try:
                resource.read_spec_file(resource.template, what="template")
            except SpecFileError as exc:
                issues.append(Issue(("template",), str(exc)))
        return issues

    def render(self, resource: File, ctx: HostContext) -> str | Sensitive | KnownAfterApply:
        return ctx.reveal(self.source_text(resource, ctx))

    def source_text(self, resource: File, ctx: HostContext) -> str:
        """The content with variables substituted and ``${secret:NAME}`` still in place."""
        if resource.content is not None:
            text = resource.content
        else:
            assert resource.template is not None
            try:
                raw = resource.read_spec_file(resource.template, what="template")
            except SpecFileError as exc:
                raise ApplyError(str(exc)) from exc
            budget = SizeBudget()
            text = substitute_vars(raw, ctx.vars, budget)
            if budget.refused:
                raise ApplyError(f"template {resource.template!r}: substituting variables would build more "
                                 f"than {budget.per_string:,} characters")
            try:
                text = ctx.expand_fleet(text)
            except ReconcilerError as exc:
                raise ApplyError(f"template {resource.template}: {exc}") from exc
            unresolved = [r.name for r in references(text) if r.kind == "var"]
            if unresolved:
                raise ApplyError(f"template {resource.template}: unresolved variable(s) "
                                 + ", ".join(f"${{{n}}}" for n in unresolved))
        return text

    def desired(self, resource: File, ctx: HostContext) -> State | None:
        if resource.state == "absent":
            return None
        content = self.render(resource, ctx)
        if isinstance(content, KnownAfterApply):
            hashed: object = KNOWN_AFTER_APPLY
        elif isinstance(content, Sensitive):
            hashed = Sensitive(digest(content.reveal()))
        else:
            hashed = digest(content)
        return {"type": "file", "content": hashed, "owner": resource.owner, "group": resource.group,
                "mode": normalize_mode(resource.mode)}

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, File]) -> dict[
            str, State | None]:
        stats = ctx.transport.stat(ids, sha256=True)
        out: dict[str, State | None] = {}
        for rid in ids:
            st = stats.get(rid)
            if st is None:
                out[rid] = None
                continue
            if st.error is not None:
                out[rid] = {"type": "refused", "error": st.error}
                continue
            state: State = {"type": st.type, "owner": st.owner, "group": st.group, "mode": st.mode,
                            "content": f"sha256:{st.sha256}" if st.sha256 else None}
            res = resources.get(rid)
            if res is not None and res.content is not None and "${secret:" in res.content:
                state["content"] = Sensitive(state["content"] or "")
            out[rid] = state
        return out

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        change = item.change
        if change.action is Action.DELETE:
            ctx.writes.remove(change.address, change.id, "file")
            return
        assert isinstance(item.resource, File) and item.desired is not None
        res = item.resource
        if item.actual is not None and item.actual.get("type") == "refused":
            raise ApplyError(str(item.actual.get("error")))
        if item.actual is not None and item.actual.get("type") not in ("file", "symlink"):
            raise ApplyError(f"{res.path} exists and is a {item.actual.get('type')}, not a file; "
                             "the reconciler will not replace it")
        content = self.render(res, ctx)
        if isinstance(content, KnownAfterApply):
            raise ApplyError("content depends on a secret that does not exist on the host")
        raw = content.reveal() if isinstance(content, Sensitive) else content
        ctx.writes.write(change.address,
                         FileWrite(res.path, raw.encode(), normalize_mode(res.mode), res.owner, res.group))

    # --- plan display: content as a diff; a change apply would refuse -------------------
    text_fields = frozenset({"content"})

    def desired_text(self, resource: File, field_name: str, ctx: HostContext) -> str | None:
        return self.source_text(resource, ctx) if field_name == "content" else None

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return rid if field_name == "content" and actual.get("type") == "file" else None

    def refusal(self, item: ApplyItem) -> str | None:
        kind = (item.actual or {}).get("type")
        if item.actual is None or kind in ("file", "symlink"):
            return None
        if kind == "refused":  # the host would not even look (a planted parent): say why
            return str(item.actual.get("error"))
        return (f"{item.change.id} is a {kind} on the host and the spec wants a file; the reconciler "
                f"never replaces a {kind} with a file (move it away by hand, then apply)")

"""The spec repository: a bare clone in the state directory, fetched on demand,
with one detached worktree per revision the controller applies.

Each revision is checked out into ``worktrees/<sha>`` (``git worktree add
--detach``), so the applied revision, a candidate and the last good revision
(for a rollback) exist side by side and a spec's templates always resolve
against the files of its own commit.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.errors import ReconcilerError
from reconciler.sensitive import redact_urls, register_url_credentials, scrub_text


class GitSourceError(ReconcilerError):
    """A git operation failed. ``transient`` when retrying later may help (fetch, clone)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    summary: str
    author: str
    committed_at: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    detail: str


def _stderr(exc: git.GitCommandError) -> str:
    """git's message, with credentials scrubbed: git echoes the remote URL (with any
    ``user:token@`` in it) in its errors, and GitPython adds the command line."""
    text = exc.stderr if isinstance(exc.stderr, str) else str(exc)
    return scrub_text(text.strip().removeprefix("stderr:").strip().strip("'").strip())


def local_git_dir(url: str) -> Path | None:
    """The directory to watch when ``url`` is a repository on this machine: its
    ``.git`` directory, or the repository itself when bare. None for remote URLs."""
    if "://" in url and not url.startswith("file://"):
        return None
    if "://" not in url and re.match(r"^[^/]+:", url):
        return None  # scp-like syntax: user@host:path
    path = Path(url.removeprefix("file://"))
    if not path.exists():
        return None
    path = path.resolve()
    if (path / ".git").is_dir():
        return path / ".git"
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path
    return None


class GitSource:
    def __init__(self, url: str, branch: str, repo_dir: Path, worktrees_dir: Path) -> None:
        self.url = str(Path(url).resolve()) if local_git_dir(url) and not url.startswith("file://") else url
        register_url_credentials(self.url)
        self.shown_url = redact_urls(self.url)  # as messages show it: credentials replaced
        self.branch = branch
        self.repo_dir = repo_dir
        self.worktrees_dir = worktrees_dir
        self._repo: git.Repo | None = None

    @property
    def tracking_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open_or_clone()
        return self._repo

    def _open_or_clone(self) -> git.Repo:
        if (self.repo_dir / "HEAD").is_file():
            try:
                repo = git.Repo(self.repo_dir)
            except git.GitError as exc:
                raise GitSourceError(f"{self.repo_dir} is not a usable clone ({exc}); remove it to re-clone",
                                     transient=False) from exc
            origin = repo.remote("origin") if "origin" in [r.name for r in repo.remotes] else None
            if origin is None:
                repo.create_remote("origin", self.url)
            elif origin.url != self.url:
                # The operator pointed the controller at another repository: follow it.
                repo.git.remote("set-url", "origin", self.url)
            return repo
        if self.repo_dir.exists():
            shutil.rmtree(self.repo_dir)  # a clone interrupted before it finished
        tmp = self.repo_dir.with_name(self.repo_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            git.Repo.clone_from(self.url, tmp, bare=True, single_branch=True, branch=self.branch)
        except git.GitCommandError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise GitSourceError(f"cannot clone {self.shown_url} (branch {self.branch}): {_stderr(exc)}",
                                 transient=True) from exc
        os.replace(tmp, self.repo_dir)
        return git.Repo(self.repo_dir)

    def fetch(self) -> str:
        """Fetch the branch; returns the sha it points at."""
        try:
            self.repo.git.fetch("--quiet", "--force", "--no-tags", "origin",
                                f"+refs/heads/{self.branch}:{self.tracking_ref}")
            sha: str = self.repo.git.rev_parse("--verify", f"{self.tracking_ref}^{{commit}}").strip()
        except git.GitCommandError as exc:
            raise GitSourceError(f"cannot fetch {self.branch} from {self.shown_url}: {_stderr(exc)}",
                                 transient=True) from exc
        return sha

    def info(self, sha: str) -> CommitInfo:
        commit = self.repo.commit(sha)
        return CommitInfo(commit.hexsha, str(commit.summary), f"{commit.author.name} <{commit.author.email}>",
                          commit.committed_datetime.isoformat())

    def is_signed(self, sha: str) -> bool:
        raw: str = self.repo.git.cat_file("commit", sha)
        header = raw.split("\n\n", 1)[0]
        return any(line.startswith("gpgsig") for line in header.splitlines())

    def verify(self, sha: str, *, allowed_signers: str | None, gpg_home: str | None) -> SignatureCheck:
        """``git verify-commit``: SSH signatures against ``allowed_signers``,
        OpenPGP signatures against the keys in ``gpg_home``."""
        if not self.is_signed(sha):
            return SignatureCheck(False, "the commit is not signed")
        argv = ["git", "-C", str(self.repo_dir)]
        if allowed_signers:
            argv += ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
        argv += ["verify-commit", "--raw", sha]
        env = dict(os.environ)
        if gpg_home:
            env["GNUPGHOME"] = gpg_home
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return SignatureCheck(False, f"git verify-commit failed to run: {exc}")
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        text = "; ".join(line for line in detail if line.strip())[:500]
        if proc.returncode == 0:
            return SignatureCheck(True, text or "good signature")
        return SignatureCheck(False, text or f"git verify-commit exited {proc.returncode}")

    # -- worktrees -------------------------------------------------------------------
    def worktree_path(self, sha: str) -> Path:
        return self.worktrees_dir / sha

    def checkout(self, sha: str) -> Path:
        """A clean detached worktree at ``sha`` (reused when one is already intact)."""
        path = self.worktree_path(sha)
        if path.exists():
            if self._intact(path, sha):
                return path
            self._remove_worktree(path)
        try:
            self.repo.git.worktree("prune")
            self.repo.git.worktree("add", "--detach", "--force", str(path), sha)
        except git.GitCommandError as exc:
            self._remove_worktree(path)
            raise GitSourceError(f"cannot check out {sha[:12]}: {_stderr(exc)}", transient=False) from exc
        return path

    @staticmethod
    def _intact(path: Path, sha: str) -> bool:
        try:
            # Closed at once: an open Repo keeps `git cat-file` processes (and descriptors) alive.
            with git.Repo(path) as tree:
                return bool(tree.head.commit.hexsha == sha and not tree.is_dirty(untracked_files=True))
        except (git.GitError, ValueError):
            return False

    def _remove_worktree(self, path: Path) -> None:
        try:
            self.repo.git.worktree("remove", "--force", str(path))
        except git.GitCommandError:
            shutil.rmtree(path, ignore_errors=True)
            self.repo.git.worktree("prune")

    def maintain(self) -> None:
        """``git gc --auto``: packs loose objects and old packs once git finds it worth it, so
        a clone fetched every few seconds for months stays small. Best effort."""
        with contextlib.suppress(git.GitCommandError):
            self.repo.git.gc("--auto", "--quiet")

    def prune_worktrees(self, keep: set[str]) -> None:
        """Remove the worktrees of revisions not in ``keep``."""
        if not self.worktrees_dir.is_dir():
            return
        for child in self.worktrees_dir.iterdir():
            if child.name not in keep:
                self._remove_worktree(child)

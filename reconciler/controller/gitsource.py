"""The spec repository: a bare clone in the state directory, fetched on demand,
with one detached worktree per revision the controller applies.

Every command that talks to the remote (the clone and each fetch) has an
end-to-end deadline (``timeout``, the ``git_timeout`` setting): git runs in a
process group of its own, and the whole group (git, its ``git-remote-https`` or
``ssh`` helper) is killed when the deadline passes, so a server that accepts the
connection and never answers cannot hold the loop. Before that, git is told to give
up by itself: over HTTP when fewer than ``GIT_HTTP_LOW_SPEED_LIMIT`` bytes a second
flow for ``GIT_HTTP_LOW_SPEED_TIME`` seconds, over SSH through ``ConnectTimeout``
and ``ServerAliveInterval`` (in ``GIT_SSH_COMMAND``, unless the environment or the
git configuration names an SSH command of its own), and never by waiting for a
password on a terminal. An expired deadline is a transient ``GitSourceError``: the
core retries the fetch with backoff.

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
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.errors import ReconcilerError
from reconciler.sensitive import redact_urls, register_url_credentials, scrub_text

GIT_TIMEOUT = 120.0
"""The default deadline of one remote git command (the clone, a fetch), in seconds."""
LOW_SPEED_LIMIT = 1000
"""Bytes a second under which an HTTP transfer counts as stalled (``GIT_HTTP_LOW_SPEED_LIMIT``)."""
STDERR_KEPT = 2000
"""Characters of git's error output kept in a message (its end: where git says why)."""


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


def remote_env(environ: Mapping[str, str], timeout: float, *, ssh_command: bool = True) -> dict[str, str]:
    """The environment of a remote git command: git gives up by itself on a stalled
    HTTP transfer (for ``min(timeout, 30)`` s under ``LOW_SPEED_LIMIT`` bytes a second)
    and on an SSH server that does not answer (``ConnectTimeout``, and three missed
    keep-alives 15 s apart), and never prompts for a password. Settings already in
    ``environ`` win; ``ssh_command`` False leaves SSH to an operator's own
    ``core.sshCommand`` (``GIT_SSH_COMMAND`` would override it)."""
    env = dict(environ)
    stall = str(max(1, int(min(timeout, 30))))
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_HTTP_LOW_SPEED_LIMIT", str(LOW_SPEED_LIMIT))
    env.setdefault("GIT_HTTP_LOW_SPEED_TIME", stall)
    if ssh_command and "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = (f"ssh -o BatchMode=yes -o ConnectTimeout={stall} "
                                  "-o ServerAliveInterval=15 -o ServerAliveCountMax=3")
    return env


def _configured_ssh_command(environ: Mapping[str, str]) -> bool:
    """Does the git configuration (global or system) name an SSH command of its own?"""
    try:
        proc = subprocess.run(["git", "config", "--get", "core.sshCommand"], capture_output=True, text=True,
                              env=dict(environ), timeout=10, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def run_remote(argv: list[str], *, timeout: float, env: Mapping[str, str], cwd: Path | None = None,
               what: str) -> str:
    """Run a git command that talks to a remote, with an end-to-end deadline; its stdout.

    git runs in a new session (its own process group), so on expiry the whole group is
    killed: git and the helpers it started (``git-remote-https``, ``ssh``), which would
    otherwise keep the connection and the pipes open. Raises a transient
    ``GitSourceError`` starting with ``what`` on expiry or failure; its text holds git's
    error output with credentials scrubbed, never the command line."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
    except OSError as exc:
        raise GitSourceError(f"{what}: cannot run git: {exc.strerror}", transient=False) from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise GitSourceError(f"{what}: no answer within {timeout:g} s (git_timeout); git was stopped",
                             transient=True) from None
    except BaseException:
        _kill_group(proc)  # interrupted: no git process may outlive the call
        raise
    if proc.returncode != 0:
        text = scrub_text(err.strip())[-STDERR_KEPT:] or f"git exited {proc.returncode}"
        raise GitSourceError(f"{what}: {text}", transient=True)
    return out


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # A helper that left the group still holds a pipe: stop waiting for it.
        proc.kill()
        proc.wait()


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
    """``timeout``: the deadline of each remote command (see the module docstring);
    ``environ``: the environment git runs in (default: this process's)."""

    def __init__(self, url: str, branch: str, repo_dir: Path, worktrees_dir: Path, *,
                 timeout: float = GIT_TIMEOUT, environ: Mapping[str, str] | None = None) -> None:
        self.url = str(Path(url).resolve()) if local_git_dir(url) and not url.startswith("file://") else url
        register_url_credentials(self.url)
        self.shown_url = redact_urls(self.url)  # as messages show it: credentials replaced
        self.branch = branch
        self.repo_dir = repo_dir
        self.worktrees_dir = worktrees_dir
        self.timeout = timeout
        base = os.environ if environ is None else environ
        self._env = remote_env(base, timeout, ssh_command=not _configured_ssh_command(base))
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
            run_remote(["git", "clone", "--quiet", "--bare", "--single-branch", "--branch", self.branch, "--",
                        self.url, str(tmp)], timeout=self.timeout, env=self._env,
                       what=f"cannot clone {self.shown_url} (branch {self.branch})")
        except GitSourceError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.replace(tmp, self.repo_dir)
        return git.Repo(self.repo_dir)

    def fetch(self) -> str:
        """Fetch the branch (cloning first when there is no clone yet); returns the sha it
        points at. Raises a transient ``GitSourceError`` when git fails or its deadline passes."""
        what = f"cannot fetch {self.branch} from {self.shown_url}"
        run_remote(["git", "-C", str(self.repo.git_dir), "fetch", "--quiet", "--force", "--no-tags", "origin",
                    f"+refs/heads/{self.branch}:{self.tracking_ref}"], timeout=self.timeout, env=self._env,
                   what=what)
        try:
            sha: str = self.repo.git.rev_parse("--verify", f"{self.tracking_ref}^{{commit}}").strip()
        except git.GitCommandError as exc:
            raise GitSourceError(f"{what}: {_stderr(exc)}", transient=True) from exc
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

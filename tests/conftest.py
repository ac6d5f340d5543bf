"""Shared pytest setup: the test bed (Docker engine, images, throwaway test hosts).

Fixtures (all hosts are removed at the end of their scope, at session end, on
failure, on Ctrl-C and on SIGTERM/SIGHUP):

* ``testbed_images``  (session)  -- :class:`testbed.images.Images`: ``.host``, ``.bare``,
                                    ``.busybox``, ``.postgres``, ``.aptcache`` image tags
* ``host_factory``    (session)  -- :class:`testbed.hosts.HostFactory`:
                                    ``host_factory(name=None, ports=...)``, ``host_factory.many(n)``
* ``fresh_host``      (function) -- a new :class:`testbed.hosts.TestHost` for one test
* ``shared_host``     (module)   -- one host shared by the tests of a module
* ``bare_host``       (function) -- a new *bare* host (systemd, sshd, sudo, python3 and
                                    nothing else) for one test

Tests using any of them get the ``host`` marker automatically (``-m "not host"``
deselects them). Host tests run by default; when the Docker engine is missing and
cannot be started they FAIL (never skip) with a hint to run
``bash scripts/ensure-docker.sh``. Images are built (or found in the cache) once,
right after collection, outside any per-test timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testbed.engine import ensure_docker
from testbed.hosts import HostFactory, TestHost, cleanup_session, install_signal_handlers
from testbed.images import Images, ensure_images
from testbed.util import TestbedError

HOST_FIXTURES = frozenset({"testbed_images", "host_factory", "fresh_host", "shared_host", "bare_host"})

_prepared: Images | None = None
_prepare_error: str | None = None


def _prepare() -> Images:
    """Docker engine up + images built; cached per session (errors too)."""
    global _prepared, _prepare_error
    if _prepared is not None:
        return _prepared
    if _prepare_error is None:
        started = time.monotonic()
        try:
            ensure_docker()
            _prepared = ensure_images()
        except TestbedError as exc:
            _prepare_error = f"test bed unavailable: {exc}"
        else:
            elapsed = time.monotonic() - started
            if elapsed > 5:
                print(f"\n[testbed] images ready in {elapsed:.0f}s", flush=True)
            return _prepared
    hint = "" if "ensure-docker.sh" in _prepare_error else "\nHint: run `bash scripts/setup.sh` as root."
    pytest.fail(_prepare_error + hint, pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    install_signal_handlers()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: before -m deselection, so `-m "not host"` sees the marker.
    for item in items:
        if HOST_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.host)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("host") for item in session.items):
        return
    # Build/reuse images now, visibly and outside the first test's timeout.
    capman = session.config.pluginmanager.getplugin("capturemanager")
    try:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                _prepare()
        else:
            _prepare()
    except pytest.fail.Exception:
        pass  # reported by the testbed_images fixture, as a failure of each host test


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cleanup_session()


@pytest.fixture(scope="session")
def testbed_images() -> Images:
    return _prepare()


@pytest.fixture(scope="session")
def host_factory(testbed_images: Images) -> Iterator[HostFactory]:
    factory = HostFactory(image=testbed_images.host)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(autouse=True)
def _hosts_started_by_a_test_end_with_it(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hosts a test starts itself with ``host_factory`` (not through a module or session
    fixture, which are set up before this one) are removed when the test ends: left to
    the end of the session, the fleet tests' hosts (five ServQR hosts with their Docker
    engines among them) weighed on every later test."""
    if "host_factory" not in request.fixturenames:
        yield
        return
    factory: HostFactory = request.getfixturevalue("host_factory")
    before = {id(h) for h in factory.hosts}
    try:
        yield
    finally:
        mine = [h for h in factory.hosts if id(h) not in before]
        factory.hosts = [h for h in factory.hosts if id(h) in before]
        for host in mine:
            host.remove()


@pytest.fixture
def fresh_host(host_factory: HostFactory, request: pytest.FixtureRequest) -> Iterator[TestHost]:
    host = host_factory(name=request.node.name[:30])
    try:
        yield host
    finally:
        host.remove()


@pytest.fixture(scope="module")
def shared_host(host_factory: HostFactory, request: pytest.FixtureRequest) -> Iterator[TestHost]:
    module = request.module.__name__.rsplit(".", 1)[-1]
    host = host_factory(name=module.removeprefix("test_")[:30])
    try:
        yield host
    finally:
        host.remove()


@pytest.fixture
def bare_host(host_factory: HostFactory, testbed_images: Images,
              request: pytest.FixtureRequest) -> Iterator[TestHost]:
    host = host_factory(name=request.node.name[:30], image=testbed_images.bare)
    try:
        yield host
    finally:
        host.remove()

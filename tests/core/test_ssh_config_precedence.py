"""How a host's SSH settings are worked out from the spec and ~/.ssh/config (pure: no
connection). The spec's own fields win; the config file fills in the rest as OpenSSH
reads it (Host patterns, first value wins); StrictHostKeyChecking only tightens."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from reconciler.transport.sshconfig import (
    Access,
    HostKeyPolicy,
    SSHSettingsError,
    load_user_config,
    resolve_route,
)

CONFIG = """\
Host web1
    HostName 10.0.0.5
    User deploy
    Port 2222
    IdentityFile ~/.ssh/web1_key
    IdentityFile ~/.ssh/spare_key
    IdentitiesOnly yes
    ProxyJump jumper@bastion:2200

Host bastion
    HostName 192.0.2.10
    IdentityFile ~/.ssh/bastion_key
    StrictHostKeyChecking no

Host db*
    ProxyJump bastion,inner
    UserKnownHostsFile ~/.ssh/kh_db /etc/ssh/other_kh
    StrictHostKeyChecking yes
    HostKeyAlias db-alias

Host inner
    ProxyJump should-be-ignored

Host legacy
    ProxyCommand nc %h %p

Host loop-a
    ProxyJump loop-b
Host loop-b
    ProxyJump loop-a

Host *
    User fallback
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(CONFIG)
    return tmp_path


def config() -> paramiko.SSHConfig:
    return load_user_config()


def test_config_fills_what_the_spec_leaves_out(home: Path) -> None:
    route = resolve_route("w", Access("ssh://web1"), config=config())
    target = route.target
    assert (target.name, target.hostname, target.user, target.port) == ("web1", "10.0.0.5", "deploy", 2222)
    assert target.identity_files == (f"{home}/.ssh/web1_key", f"{home}/.ssh/spare_key")
    assert target.identities_named
    assert not target.use_agent  # IdentitiesOnly yes
    assert target.url == "ssh://deploy@web1:2222"
    assert target.known_hosts_name == "[10.0.0.5]:2222"
    # The config's ProxyJump: the jump's own settings come from its Host block.
    [jump] = route.jumps
    assert (jump.name, jump.hostname, jump.user, jump.port) == ("bastion", "192.0.2.10", "jumper", 2200)
    assert jump.identity_files == (f"{home}/.ssh/bastion_key",)
    assert route.description == "ssh://deploy@web1:2222 via ssh://jumper@bastion:2200"


def test_the_spec_wins_over_the_config(home: Path) -> None:
    access = Access("ssh://root@web1:22", identity_file="~/keys/spec_key", known_hosts="~/kh",
                    proxy_jump="ssh://ops@gw.example:22")
    route = resolve_route("w", access, config=config())
    target = route.target
    assert (target.user, target.port, target.hostname) == ("root", 22, "10.0.0.5")  # HostName still applies
    assert target.identity_files == (f"{home}/keys/spec_key",)
    assert target.spec_known_hosts == f"{home}/kh"
    [jump] = route.jumps
    assert (jump.user, jump.name, jump.port) == ("ops", "gw.example", 22)
    # The spec's proxy_jump is checked with the target's known_hosts and policy, and a
    # jump the config gives no key is tried with the target's identity file.
    assert jump.spec_known_hosts == f"{home}/kh"
    assert jump.identity_files == (f"{home}/keys/spec_key",)


def test_defaults_without_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    route = resolve_route("w", Access("ssh://plain.example"), config=config())
    target = route.target
    assert (target.user, target.port, route.jumps) == ("root", 22, ())
    defaults = ("id_rsa", "id_ecdsa", "id_ed25519")
    assert target.identity_files == tuple(f"{tmp_path}/.ssh/{k}" for k in defaults)
    assert not target.identities_named and target.use_agent
    assert target.user_known_hosts == (f"{tmp_path}/.ssh/known_hosts", f"{tmp_path}/.ssh/known_hosts2")
    assert target.host_key is HostKeyPolicy.CHECK


def test_strict_host_key_checking_only_tightens(home: Path) -> None:
    # bastion's block says "no": the spec's check stays check.
    loose = resolve_route("b", Access("ssh://bastion"), config=config()).target
    assert loose.host_key is HostKeyPolicy.CHECK
    # db*'s block says "yes": the spec's accept-new becomes check.
    strict = resolve_route("d", Access("ssh://db1", host_key="accept-new"), config=config()).target
    assert strict.host_key is HostKeyPolicy.CHECK and strict.strict_by_config
    # Without a StrictHostKeyChecking line the spec's accept-new stands.
    assert resolve_route("p", Access("ssh://plain", host_key="accept-new"),
                         config=config()).target.host_key is HostKeyPolicy.ACCEPT_NEW


def test_known_hosts_files_and_alias_from_the_config(home: Path) -> None:
    target = resolve_route("d", Access("ssh://db1"), config=config()).target
    assert target.user_known_hosts == (f"{home}/.ssh/kh_db", "/etc/ssh/other_kh")
    assert target.known_hosts_name == "db-alias"


def test_a_jump_chain_reaches_later_hops_through_earlier_ones(home: Path) -> None:
    route = resolve_route("d", Access("ssh://db1"), config=config())
    # bastion,inner: inner's own ProxyJump is ignored (as with ssh -J), bastion has none.
    assert [j.name for j in route.jumps] == ["bastion", "inner"]
    assert route.jumps[1].user == "fallback"  # `Host *` fills what nothing else said


def test_via_uses_the_other_host_entry_and_its_own_route(home: Path) -> None:
    peers = {
        "edge": Access("ssh://ops@192.0.2.1:22", identity_file="~/edge_key", known_hosts="~/edge_kh"),
        "mid": Access("ssh://root@10.1.0.1", via="edge", known_hosts="~/mid_kh"),
    }
    route = resolve_route("app", Access("ssh://root@10.2.0.7", via="mid", known_hosts="~/app_kh"),
                          peers, config=config())
    assert [j.url for j in route.jumps] == ["ssh://ops@192.0.2.1:22", "ssh://root@10.1.0.1:22"]
    # Each hop is checked with its own entry's known_hosts.
    assert [j.spec_known_hosts for j in route.jumps] == [f"{home}/edge_kh", f"{home}/mid_kh"]
    assert route.jumps[0].identity_files == (f"{home}/edge_key",)
    assert route.target.spec_known_hosts == f"{home}/app_kh"


@pytest.mark.parametrize(("access", "peers", "message"), [
    (Access("ssh://legacy"), {}, "ProxyCommand, which reconciler does not run"),
    (Access("ssh://loop-a"), {}, "ProxyJump loops"),
    (Access("ssh://x", via="a"), {"a": Access("ssh://a", via="b"), "b": Access("ssh://b", via="a")},
     "`via` loops: app -> a -> b -> a"),
    (Access("ssh://x", via="nope"), {}, "`via: nope` names no host of the spec"),
    (Access("ssh://x", via="me"), {"me": Access("local")}, "names a local host"),
    (Access("ssh://x", proxy_jump="bad host!"), {}, "bad jump host"),
])
def test_settings_that_say_nothing_sensible_are_errors(home: Path, access: Access, peers: dict[str, Access],
                                                       message: str) -> None:
    with pytest.raises(SSHSettingsError, match=message.replace("(", r"\(")):
        resolve_route("app", access, peers, config=config())


def test_proxy_jump_none_means_direct(home: Path) -> None:
    (home / ".ssh" / "config").write_text("Host direct\n    ProxyJump none\n" + CONFIG)
    assert resolve_route("d", Access("ssh://direct"), config=config()).jumps == ()


def test_a_malformed_config_is_reported_with_its_path(home: Path) -> None:
    (home / ".ssh" / "config").write_text("Host x\n    =broken\n")
    with pytest.raises(SSHSettingsError, match=r"\.ssh/config"):
        load_user_config()

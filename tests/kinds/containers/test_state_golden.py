"""Golden tests: real ``docker inspect`` output of containers the provider created,
beside the spec that created them (tests/kinds/containers/fixtures/).

The fixtures were captured right after an apply, so the spec's desired state and the
observed state must match exactly; the parsed state is also pinned as JSON. To
refresh after a deliberate change: RECONCILER_UPDATE_GOLDEN=1 pytest this file,
then review the diff of observed-*.json.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import docker.types
import pytest
import yaml
from reconciler_providers.containers.provider import Container, ContainersProvider
from reconciler_providers.containers.state import (
    create_parameters,
    desired_state,
    host_config_parameters,
    observed_state,
    spec_hash,
)

from reconciler.plan import Action
from reconciler.sensitive import REDACTED, KnownAfterApply, Sensitive, public

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "fixture-password-not-a-real-secret"  # the value in inspect-app-postgres.json
NAMES = ["app-postgres", "box"]


def spec(name: str) -> Container:
    items = yaml.safe_load((FIXTURES / "spec.yaml").read_text())["containers"]
    return Container.model_validate(next(i for i in items if i["name"] == name))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def reveal(text: str) -> str | Sensitive | KnownAfterApply:
    if "${secret:db_password}" in text:
        return Sensitive(text.replace("${secret:db_password}", PASSWORD))
    return text


def observed(name: str, res: Container | None = None) -> dict[str, Any]:
    image = load("image-postgres.json")
    return observed_state(load(f"inspect-{name}.json"), image["Config"], res or spec(name))


def desired(name: str) -> dict[str, Any]:
    return desired_state(spec(name), reveal, load("image-postgres.json")["Id"])


@pytest.mark.parametrize("name", NAMES)
def test_inspect_output_parses_to_the_pinned_state(name: str) -> None:
    golden = FIXTURES / f"observed-{name}.json"
    got = public(observed(name))
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())


@pytest.mark.parametrize("name", NAMES)
def test_a_freshly_applied_container_matches_its_spec(name: str) -> None:
    assert ContainersProvider().compare(desired(name), observed(name)) == []


def test_the_spec_hash_label_is_the_hash_of_the_spec() -> None:
    for name in NAMES:
        labels = load(f"inspect-{name}.json")["Config"]["Labels"]
        assert labels["io.reconciler.spec-hash"] == spec_hash(spec(name))
        assert labels["io.reconciler.managed"] == "true"


def test_secret_env_values_are_sensitive_on_both_sides() -> None:
    have = observed("app-postgres")["env"]["POSTGRES_PASSWORD"]
    want = desired("app-postgres")["env"]["POSTGRES_PASSWORD"]
    assert isinstance(have, Sensitive) and isinstance(want, Sensitive)
    assert have == want == PASSWORD  # compared by value...
    assert PASSWORD not in json.dumps(public(observed("app-postgres")))  # ...never shown


def test_image_defaults_are_not_mistaken_for_spec_env() -> None:
    env = observed("box")["env"]
    assert env == {"MODE": "test", "WORKERS": "4"}  # PATH, PGDATA, LANG come from the image


def test_an_env_var_that_left_the_spec_is_a_hidden_replace() -> None:
    res = spec("app-postgres")
    trimmed = res.model_copy(update={"env": {k: v for k, v in res.env.items() if k != "POSTGRES_DB"}})
    fields = ContainersProvider().compare(desired_state(trimmed, reveal, None),
                                          observed("app-postgres", trimmed))
    by_path = {f.path: f for f in fields}
    assert set(by_path) == {"env.POSTGRES_DB", "spec_hash"}
    assert isinstance(by_path["env.POSTGRES_DB"].old, Sensitive) and by_path["env.POSTGRES_DB"].new is None
    assert ContainersProvider().action_for(fields) is Action.REPLACE


def test_a_stopped_container_is_started_in_place() -> None:
    info = copy.deepcopy(load("inspect-box.json"))
    info["State"].update(Status="exited", Running=False, ExitCode=137)
    state = observed_state(info, load("image-postgres.json")["Config"], spec("box"))
    fields = ContainersProvider().compare(desired("box"), state)
    assert [(f.path, f.old, f.new) for f in fields] == [("state", "stopped", "running")]
    assert ContainersProvider().action_for(fields) is Action.UPDATE


def test_an_unhealthy_container_is_waited_for_not_replaced() -> None:
    info = copy.deepcopy(load("inspect-app-postgres.json"))
    info["State"]["Health"]["Status"] = "unhealthy"
    state = observed_state(info, load("image-postgres.json")["Config"], spec("app-postgres"))
    fields = ContainersProvider().compare(desired("app-postgres"), state)
    assert [(f.path, f.old, f.new) for f in fields] == [("health", "unhealthy", "healthy")]
    assert ContainersProvider().action_for(fields) is Action.UPDATE


def test_a_container_running_an_older_image_is_replaced() -> None:
    info = copy.deepcopy(load("inspect-box.json"))
    info["Image"] = "sha256:" + "0" * 64
    state = observed_state(info, None, spec("box"))
    fields = ContainersProvider().compare(desired("box"), state)
    assert [f.path for f in fields] == ["image_id"]
    assert ContainersProvider().action_for(fields) is Action.REPLACE


def test_hand_made_limit_change_is_drift() -> None:
    info = copy.deepcopy(load("inspect-box.json"))
    info["HostConfig"]["Memory"] = 128 << 20  # docker update --memory 128m
    state = observed_state(info, load("image-postgres.json")["Config"], spec("box"))
    fields = ContainersProvider().compare(desired("box"), state)
    assert [(f.path, f.old, f.new) for f in fields] == [("memory", 128 << 20, 64 << 20)]


def test_a_prune_candidate_shows_identity_and_mounts_but_no_env() -> None:
    state = observed_state(load("inspect-app-postgres.json"), None, None)
    assert set(state) == {"id", "image", "image_id", "state", "volumes", "binds", "remove_volumes_on_prune",
                          "stop_timeout"}
    assert state["binds"] == ["/opt/app/data/postgres:/var/lib/postgresql/data:rw"]


@pytest.mark.parametrize("name", NAMES)
def test_create_parameters_reproduce_the_engines_host_config(name: str) -> None:
    """What we send, run through the SDK's own HostConfig builder, is what the engine kept."""
    info = load(f"inspect-{name}.json")
    sent = docker.types.HostConfig(version="1.41", **host_config_parameters(spec(name)))
    for key in ("Binds", "PortBindings", "RestartPolicy", "Memory", "NanoCpus", "LogConfig", "NetworkMode"):
        if key in sent:
            kept = info["HostConfig"][key]
            if key == "Binds":
                assert sorted(sent[key]) == sorted(kept)
            else:
                assert sent[key] == kept, key
    params = create_parameters(spec(name), {"X": "1"}, "hash")
    assert params["labels"]["io.reconciler.managed"] == "true"
    assert params["labels"]["io.reconciler.spec-hash"] == "hash"
    config = info["Config"]
    assert params["image"] == config["Image"]
    assert params.get("entrypoint", config["Entrypoint"]) == config["Entrypoint"]
    assert {f"{p}/{proto}" for p, proto in params["ports"]} <= set(config["ExposedPorts"])
    if "healthcheck" in params:
        hc = params["healthcheck"]
        assert {k: hc.get(k.lower().replace("startperiod", "start_period")) for k in config["Healthcheck"]} \
            == config["Healthcheck"]


def test_redacted_marker_is_what_plans_show() -> None:
    assert public(observed("app-postgres")["env"])["POSTGRES_PASSWORD"] == REDACTED


def test_a_stopped_container_with_a_healthcheck_is_started_and_waited_for() -> None:
    # The engine keeps the last health ("unhealthy") on a stopped container; it is not shown.
    info = copy.deepcopy(load("inspect-app-postgres.json"))
    info["State"].update(Status="exited", Running=False, ExitCode=0)
    info["State"]["Health"]["Status"] = "unhealthy"
    state = observed_state(info, load("image-postgres.json")["Config"], spec("app-postgres"))
    fields = ContainersProvider().compare(desired("app-postgres"), state)
    assert [(f.path, f.old, f.new) for f in fields] == [("state", "stopped", "running"),
                                                         ("health", None, "healthy")]
    assert ContainersProvider().action_for(fields) is Action.UPDATE

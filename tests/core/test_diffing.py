"""Field diffing (reconciler/diffing.py): desired vs observed state as pure data.

Only fields the desired state names are compared; nested dicts are reported per
key (with the key intact, whatever characters it holds), lists as a whole;
``(known after apply)`` is always a change; a secret equals the same text observed
on the host and its old value stays secret.
"""

from __future__ import annotations

from reconciler.diffing import diff_states
from reconciler.plan import FieldChange
from reconciler.sensitive import KNOWN_AFTER_APPLY, Sensitive


def test_absent_means_every_desired_field_is_new() -> None:
    assert diff_states({"mode": "0644", "owner": "root"}, None) == [
        FieldChange("mode", None, "0644"), FieldChange("owner", None, "root")]


def test_equal_state_has_no_changes() -> None:
    state = {"mode": "0644", "env": {"A": "1"}, "ports": [80, 443], "enabled": True}
    assert diff_states(state, dict(state)) == []


def test_fields_the_spec_does_not_name_are_ignored() -> None:
    assert diff_states({"mode": "0644"}, {"mode": "0644", "size": "12", "inode": 99}) == []


def test_changed_field_reports_old_and_new() -> None:
    assert diff_states({"mode": "0640", "owner": "root"}, {"mode": "0644", "owner": "root"}) == [
        FieldChange("mode", "0644", "0640")]


def test_missing_observed_field_is_a_change_from_none() -> None:
    assert diff_states({"content": "sha256:ab"}, {"mode": "0644"}) == [
        FieldChange("content", None, "sha256:ab")]


def test_nested_dict_is_reported_per_key_including_removed_keys() -> None:
    desired = {"env": {"DB_HOST": "db2", "PORT": "5432", "NEW": "x"}}
    actual = {"env": {"DB_HOST": "db1", "PORT": "5432", "OLD": "y"}}
    assert diff_states(desired, actual) == [
        FieldChange("env.DB_HOST", "db1", "db2"),
        FieldChange("env.NEW", None, "x"),
        FieldChange("env.OLD", "y", None),
    ]


def test_nested_keys_keep_dots_quotes_brackets_and_numbers() -> None:
    desired = {"labels": {"traefik.http.routers.app.rule": "Host(`b`)", "it's": "1", "a[0]": "x", 7: "seven"}}
    actual = {"labels": {"traefik.http.routers.app.rule": "Host(`a`)", "it's": "2", "a[0]": "y", 7: "six"}}
    assert diff_states(desired, actual) == [
        FieldChange("labels.traefik.http.routers.app.rule", "Host(`a`)", "Host(`b`)"),
        FieldChange("labels.it's", "2", "1"),
        FieldChange("labels.a[0]", "y", "x"),
        FieldChange("labels.7", "six", "seven"),
    ]


def test_deep_change_is_reported_at_the_first_level_key() -> None:
    desired = {"env": {"A": {"x": [1, {"b": 2}]}}}
    actual = {"env": {"A": {"x": [1, {"b": 3}]}}}
    assert diff_states(desired, actual) == [FieldChange("env.A", {"x": [1, {"b": 3}]}, {"x": [1, {"b": 2}]})]


def test_list_is_compared_as_a_whole_and_order_matters() -> None:
    assert diff_states({"ports": [80, 443]}, {"ports": [443, 80]}) == [
        FieldChange("ports", [443, 80], [80, 443])]


def test_dict_replacing_a_non_dict_is_one_change() -> None:
    assert diff_states({"env": {"A": "1"}}, {"env": None}) == [FieldChange("env", None, {"A": "1"})]


def test_bool_differs_from_int() -> None:
    assert diff_states({"enabled": True}, {"enabled": 1}) == [FieldChange("enabled", 1, True)]
    assert diff_states({"count": 1}, {"count": True}) == [FieldChange("count", True, 1)]
    assert diff_states({"env": {"a": True}}, {"env": {"a": 1}}) == [FieldChange("env.a", 1, True)]


def test_known_after_apply_is_always_a_change() -> None:
    changes = diff_states({"content": KNOWN_AFTER_APPLY}, {"content": "sha256:ab"})
    assert changes == [FieldChange("content", "sha256:ab", KNOWN_AFTER_APPLY)]
    assert changes[0].pending


def test_secret_equals_the_same_text_observed() -> None:
    assert diff_states({"password": Sensitive("s3cret-value")}, {"password": "s3cret-value"}) == []
    assert diff_states({"env": {"PW": Sensitive("s3cret-value")}}, {"env": {"PW": "s3cret-value"}}) == []


def test_old_value_of_a_secret_field_stays_secret() -> None:
    for desired, actual in (({"password": Sensitive("new-secret")}, {"password": "old-secret"}),
                            ({"env": {"PW": Sensitive("new-secret")}}, {"env": {"PW": "old-secret"}})):
        [change] = diff_states(desired, actual)
        assert isinstance(change.old, Sensitive) and isinstance(change.new, Sensitive)
        assert change.sensitive
        assert "old-secret" not in repr(change) and "new-secret" not in repr(change)
        assert change.to_json()["old"] == "(sensitive)" and change.to_json()["new"] == "(sensitive)"

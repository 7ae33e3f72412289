"""`agenthost dispatch` and `agenthost call`: what they check before they reach the server, and what they say."""

import json

from host.testing.cli import agenthost

CALL_SERVER = ("--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s")


def test_dispatch_checks_metadata_before_sending():
    r = agenthost("dispatch", "ok", "--room", "r", "--config", "tests/fixtures/good", "--metadata", "{}",
                  "--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s")
    assert r.returncode == 1
    assert r.stderr == "<metadata>:1:1: $: 'user_id' is a required property\n1 error\n"


def test_dispatch_to_an_agent_whose_file_is_broken_shows_the_file_problems(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nlimits: {max_jobs: -1}\n")
    r = agenthost("dispatch", "a", "--room", "r", "--config", str(tmp_path),
                  "--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "a.yaml:3:" in r.stderr and "$.limits.max_jobs" in r.stderr
    assert "no agent named 'a' (known: none) that loads without problems" in r.stderr


def test_call_an_unknown_agent_is_a_usage_error():
    r = agenthost("call", "nope", "--say", "hi", "--config", "tests/fixtures/good", *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith("Error: no agent named 'nope' (known: ok)\n")


def test_call_with_nothing_to_say_is_a_usage_error():
    r = agenthost("call", "ok", "--config", "tests/fixtures/good", *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith("Error: nothing to say: give --say TEXT or --wav FILE (repeatable)\n")


def test_call_names_a_missing_wav(tmp_path):
    r = agenthost("call", "ok", "--wav", str(tmp_path / "gone.wav"), "--config", "tests/fixtures/good",
                  "--metadata", '{"user_id": "u"}', *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith(f"Error: Invalid value for --say/--wav: {tmp_path / 'gone.wav'}: no such file\n")


def test_call_checks_metadata_before_calling():
    r = agenthost("call", "ok", "--say", "hi", "--config", "tests/fixtures/good", "--metadata", "{}", *CALL_SERVER)
    assert r.returncode == 2  # bad input, as every usage error of `call`
    assert r.stderr == "<metadata>:1:1: $: 'user_id' is a required property\n1 error\n"


def test_call_says_when_the_server_is_unreachable():
    r = agenthost("call", "ok", "--say", "hi", "--config", "tests/fixtures/good", "--metadata", '{"user_id": "u"}',
                  *CALL_SERVER)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "agenthost: cannot join room 'call-" in r.stderr and "at ws://127.0.0.1:9" in r.stderr


def test_call_with_json_reports_a_call_that_ended_before_its_turns():
    r = agenthost("call", "ok", "--say", "hi", "--json", "--room", "r1", "--config", "tests/fixtures/good",
                  "--metadata", '{"user_id": "u"}', *CALL_SERVER)
    assert r.returncode == 3
    report = json.loads(r.stdout)
    assert report["agent"] == "ok" and report["room"] == "r1" and report["turns"] == []
    assert report["error"].startswith("cannot join room 'r1'")


def test_the_metadata_must_fit_every_version_a_dispatch_may_go_to(tmp_path):
    for version, field, weight in (("v1", "user", 1), ("v2", "account", 1)):
        (tmp_path / f"{version}.yaml").write_text(
            f"name: shop\nversion: {version}\nweight: {weight}\nentrypoint: m.py:f\n"
            f"metadata:\n  schema: {{type: object, required: [{field}]}}\n")
    r = agenthost("dispatch", "shop", "--room", "room-1", "--config", str(tmp_path), "--metadata", '{"user": "u"}',
                  *CALL_SERVER)
    assert r.returncode == 1 and "the metadata does not fit version v2 of shop" in r.stderr, r.stderr
    assert "'account' is a required property" in r.stderr
    (tmp_path / "v2.yaml").write_text((tmp_path / "v2.yaml").read_text().replace("weight: 1", "weight: 0"))
    r = agenthost("dispatch", "shop", "--room", "room-1", "--config", str(tmp_path), "--metadata", '{"user": "u"}',
                  *CALL_SERVER)
    assert r.returncode == 3, r.stderr  # v2 takes no new call: checked, then the (absent) server is asked

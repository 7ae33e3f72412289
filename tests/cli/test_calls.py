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


def test_a_server_url_that_is_not_one_is_a_usage_error_naming_it_before_anything_is_reached():
    for url in ("notaurl", "ws://127.0.0.1:port", "ftp://127.0.0.1"):
        r = agenthost("call", "ok", "--say", "hi", "--config", "tests/fixtures/good", "--url", url,
                      "--api-key", "k", "--api-secret", "s")
        assert r.returncode == 2, r.stderr
        assert f"LIVEKIT_URL {url!r} is not a server's URL: expected ws://HOST:PORT" in r.stderr


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
    assert report["agent"] == "ok" and report["room"] == "r1"
    assert report["error"].startswith("cannot join room 'r1'")
    # each turn is named, as not spoken and why
    assert report["turns"] == [{"said": "hi", "understood": None, "answered": None, "heard": None,
                                "latency_ms": None, "error": f"not spoken: {report['error']}"}]


def test_the_metadata_must_fit_a_version_a_dispatch_may_go_to(tmp_path):
    """A host gives the job to a version whose schema takes its metadata: one must, and when none does, each
    version's problems are said."""
    for version, field, weight in (("v1", "user", 1), ("v2", "account", 1)):
        (tmp_path / f"{version}.yaml").write_text(
            f"name: shop\nversion: {version}\nweight: {weight}\nentrypoint: m.py:f\n"
            f"metadata:\n  schema: {{type: object, required: [{field}]}}\n")
    r = agenthost("dispatch", "shop", "--room", "room-1", "--config", str(tmp_path), "--metadata", '{"user": "u"}',
                  *CALL_SERVER)
    assert r.returncode == 3, r.stderr  # v1 takes it: checked, then the (absent) server is asked
    r = agenthost("dispatch", "shop", "--room", "room-1", "--config", str(tmp_path), "--metadata", '{"who": "u"}',
                  *CALL_SERVER)
    assert r.returncode == 1 and "the metadata does not fit version v1 of shop" in r.stderr, r.stderr
    assert "the metadata does not fit version v2 of shop" in r.stderr and "'account' is a required property" in r.stderr


def test_a_server_that_never_answers_ends_the_call_as_unreachable(tmp_path):
    """A server that takes the connection and never answers: the call gives up after --timeout and leaves
    (nothing to delete: it never got into a room) rather than waiting on the server."""
    import socket

    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)  # connections are accepted by the kernel, and never answered
        r = agenthost("call", "ok", "--say", "hi", "--timeout", "2", "--config", "tests/fixtures/good",
                      "--metadata", '{"user_id": "u"}', "--url", f"ws://127.0.0.1:{mute.getsockname()[1]}",
                      "--api-key", "k", "--api-secret", "s", timeout=120)
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert "agenthost: cannot join room 'call-" in r.stderr and "timed out" in r.stderr, r.stderr


def test_call_refuses_a_record_folder_it_cannot_make(tmp_path):
    (tmp_path / "afile").write_text("")
    r = agenthost("call", "ok", "--say", "hi", "--record", str(tmp_path / "afile" / "answers"), "--config",
                  "tests/fixtures/good", "--metadata", '{"user_id": "u"}', *CALL_SERVER)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.endswith(f"Error: Invalid value for --record: cannot save the answers in "
                             f"{tmp_path / 'afile' / 'answers'}: Not a directory\n"), r.stderr


def test_call_refuses_an_empty_room_name():
    r = agenthost("call", "ok", "--say", "hi", "--room", " ", "--config", "tests/fixtures/good",
                  "--metadata", '{"user_id": "u"}', *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith("Error: Invalid value for --room: a room's name cannot be empty\n"), r.stderr


def test_a_metadata_file_that_cannot_be_read_is_named_with_its_option(tmp_path):
    r = agenthost("call", "ok", "--say", "hi", "--metadata", f"@{tmp_path / 'gone.json'}", "--config",
                  "tests/fixtures/good", *CALL_SERVER)
    assert r.returncode == 2
    assert "Error: Invalid value for --metadata: cannot read" in r.stderr and "gone.json" in r.stderr, r.stderr


def test_a_turn_the_synthesiser_makes_no_audio_of_says_so():
    r = agenthost("call", "ok", "--say", "こんにちは", "--config", "tests/fixtures/good",
                  "--metadata", '{"user_id": "u"}', *CALL_SERVER)
    assert r.returncode == 2
    assert "the synthesiser made no audio of 'こんにちは' (it speaks English words)" in r.stderr, r.stderr

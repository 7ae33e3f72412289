"""What is said when the LiveKit server cannot be used: keys it refuses, nothing answering, anything else."""

from __future__ import annotations

from livekit import api

from host.runtime.dispatching import server_problem

URL = "http://127.0.0.1:7880"


def test_refused_keys_say_which_settings_to_check():
    refused = api.TwirpError(api.TwirpErrorCode.UNAUTHENTICATED, "invalid token", status=401)
    for exc in (refused, RuntimeError("engine: signal failure: 401 Unauthorized")):
        text = server_problem(exc, URL)
        assert text.startswith(f"the server at {URL} refused the API key and secret (")
        assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET (or --api-key and --api-secret)" in text


def test_nothing_answering_says_to_start_a_server():
    for exc in (ConnectionRefusedError(111, "Connection refused"), OSError("Connect call failed: Connection refused")):
        assert server_problem(exc, URL) == (f"nothing answers at {URL}: is livekit-server running there? "
                                            "(`agenthost dev` starts one)")


def test_anything_else_is_said_as_the_server_said_it():
    other = api.TwirpError(api.TwirpErrorCode.NOT_FOUND, "room not found", status=404)
    assert server_problem(other, URL) == f"{URL}: {other}"
    assert server_problem(TimeoutError(), URL) == f"{URL}: TimeoutError"

from host.config.credentials import Credentials, redact_url


def test_credentials_in_urls_are_never_shown():
    assert redact_url("wss://user:pass@lk.example:443/x") == "wss://***@lk.example:443/x"
    assert redact_url("failed: Cannot connect to ws://a:b@127.0.0.1:9/agent") == \
        "failed: Cannot connect to ws://***@127.0.0.1:9/agent"
    assert redact_url("ws://127.0.0.1:7880") == "ws://127.0.0.1:7880"
    c = Credentials("ws://u:p@h:1", "k", "s")
    assert c.shown_url == "ws://***@h:1" and c.http_url == "http://u:p@h:1"


def test_one_url_loses_its_user_and_password_whatever_they_hold():
    from host.config.credentials import without_userinfo

    assert without_userinfo("redis://u:p@ss@h:1/0") == "redis://***@h:1/0"
    assert without_userinfo("http://proxy.corp:3128") == "http://proxy.corp:3128"

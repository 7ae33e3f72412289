from host.secrets import strip_secret_options


def test_secret_options_are_taken_off_the_command_line():
    argv = ["-m", "host", "run", "--api-secret", "s1", "--http-token=t1", "--http", "127.0.0.1:0", "agents.d"]
    assert strip_secret_options(argv) == (["-m", "host", "run", "--http", "127.0.0.1:0", "agents.d"],
                                          {"api_secret": "s1", "http_token": "t1"})
    assert strip_secret_options(["run", "--", "--api-secret"]) == (["run", "--", "--api-secret"], {})
    assert strip_secret_options(["run", "--api-secret"]) == (["run"], {"api_secret": ""})
    assert strip_secret_options(["run", "--redis", "redis://:pw@h/0", "--redis-prefix", "p:"]) == \
        (["run", "--redis-prefix", "p:"], {"redis_url": "redis://:pw@h/0"})

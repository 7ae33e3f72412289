import logging

from host import logs


def record(msg: str, *args: object, **fields: object) -> logging.LogRecord:
    r = logging.LogRecord("agenthost.test", logging.INFO, "", 0, msg, args, None)
    for k, v in fields.items():
        setattr(r, k, v)
    return r


def test_a_value_from_a_client_cannot_forge_a_text_log_line():
    line = logs.TextFormatter().format(record("job %s", "a\n12:00:00.000 INFO    agenthost.host: forged",
                                              room="r\nx"))
    assert "\n" not in line and "a\\n12:00" in line and "room=r\\nx" in line


def test_long_values_are_cut_with_their_length_said():
    text = logs.TextFormatter().format(record("refused", room="x" * 5000))
    assert len(text) < 400 and "(5000 characters)" in text
    body = logs.JsonFormatter().format(record("m" * 20_000, room="y" * 5000))
    assert len(body) < 9000 and "(20000 characters)" in body and "(5000 characters)" in body


def test_job_fields_name_the_job():
    assert logs.job_fields("a", "AJ_1", "AD_1", "r") == {"agent": "a", "job_id": "AJ_1", "dispatch_id": "AD_1",
                                                         "room": "r"}
    assert logs.job_fields("a", "AJ_1") == {"agent": "a", "job_id": "AJ_1"}

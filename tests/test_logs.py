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


def test_setup_again_in_a_forked_process_only_swaps_the_filter(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    template, job = logs.JobFields({"template": True}), logs.JobFields({"pid": 1})
    logs.setup("text", logging.INFO, template)
    handler = root.handlers[0]
    set_levels = []
    monkeypatch.setattr(logging.Logger, "setLevel", lambda self, level: set_levels.append((self.name, level)))
    logs.setup("text", logging.INFO, job)  # as a job process forked from its template does
    assert root.handlers == [handler] and handler.filters == [job]
    assert set_levels == []  # each would clear every logger's cache: in a forked process, copy them all
    logs.setup("text", logging.DEBUG, job)
    assert set_levels == [("root", logging.DEBUG)]
    logs.setup("json", logging.DEBUG)
    assert root.handlers != [handler] and isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    assert root.handlers[0].filters == []


def test_livekit_rtc_debug_is_read_as_the_rtc_client_reads_it():
    from host.logs import rtc_logs_to_python

    assert rtc_logs_to_python({"LIVEKIT_RTC_DEBUG": " True "})
    assert rtc_logs_to_python({"LIVEKIT_RTC_DEBUG": "1"})
    assert not rtc_logs_to_python({"LIVEKIT_RTC_DEBUG": "0"})
    assert not rtc_logs_to_python({})

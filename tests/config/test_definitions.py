import pickle

import pytest

from host.config.definitions import MetadataPolicy, build, parse_duration, render_template, template_problem
from host.config.yamlsource import parse_documents


@pytest.mark.parametrize(("text", "seconds"), [(5, 5.0), (0.5, 0.5), ("250ms", 0.25), ("10s", 10.0),
                                               ("2m", 120.0), ("1.5s", 1.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-5s", "5h", "", "s", -1, True])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_templates():
    assert template_problem("agent-{job_id}-{room}") is None
    assert "unknown template field {user}" in template_problem("a-{user}")
    assert "not a valid template" in template_problem("a-{job_id")
    assert render_template("{agent}@{room}", job_id="J", agent="a", room="r") == "a@r"


def test_build_applies_defaults_and_is_picklable(tmp_path):
    docs, _ = parse_documents("a.yaml", "name: a\nentrypoint: tools/x.py:main\n")
    d = build(docs[0], str(tmp_path), MetadataPolicy(None, None, False))
    assert d.dispatch == "explicit" and d.registered_name == "a"
    assert d.shutdown.timeout == 10.0 and d.shutdown.when == "participants_left"
    assert d.processes.idle == 1 and d.limits.max_jobs == 0
    assert d.participant.identity == "agent-{job_id}" and d.participant.name == "a"
    assert d.entrypoint.file == str(tmp_path / "tools" / "x.py") and d.entrypoint.module is None
    assert pickle.loads(pickle.dumps(d)) == d


def test_automatic_dispatch_registers_the_empty_name(tmp_path):
    docs, _ = parse_documents("a.yaml", "name: a\nentrypoint: m:f\ndispatch: automatic\n")
    d = build(docs[0], str(tmp_path), MetadataPolicy(None, None, False))
    assert d.registered_name == "" and d.entrypoint.module == "m"

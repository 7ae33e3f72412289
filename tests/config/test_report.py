import json

from host.config.report import render
from host.errors import Problem

WARNING = Problem("a.yaml", 3, 13, "$.entrypoint", "the module registers agent_name 'x'")
ERROR = Problem("b.yaml", 1, 7, "$.name", "bad name")


def test_warnings_are_said_in_every_format_and_never_fail_the_report():
    assert render("text", (), [], 1, [WARNING]) == (
        "a.yaml:3:13: $.entrypoint: warning: the module registers agent_name 'x'\nok: 0 agents in 1 file\n")
    body = json.loads(render("json", (), [], 1, [WARNING]))
    assert body["status"] == "ok" and body["warnings"][0]["message"].startswith("the module")
    assert render("github", (), [ERROR], 1, [WARNING]).splitlines() == [
        "::warning file=a.yaml,line=3,col=13,title=$.entrypoint::$.entrypoint: the module registers agent_name 'x'",
        "::error file=b.yaml,line=1,col=7,title=$.name::$.name: bad name"]

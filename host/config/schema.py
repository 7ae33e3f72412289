"""The agent file format: its JSON Schema, and checking documents against it.

`schemas/agent.schema.json` is the single statement of the format. Each problem is
placed at the offending value (or key), with a "did you mean" for near-miss keys and
the schema's own `errorMessage` where it gives one.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from host.config.yamlsource import Document, JsonPath
from host.errors import Problem


def schema_text() -> str:
    """The agent schema as shipped: inside the wheel, or beside the package in a checkout."""
    packaged = resources.files("host").joinpath("agent.schema.json")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "schemas" / "agent.schema.json").read_text(encoding="utf-8")


@functools.cache
def agent_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


def end_anchored(pattern: str) -> str:
    """`pattern` with a final `$` meaning the end of the string, as in JSON Schema (ECMA 262) regexes;
    in Python's, `$` also matches before a final newline, which let `name: "a\\n"` through."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not re.search(end_anchored(patrn), instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


@functools.cache
def _validator() -> Draft202012Validator:
    cls = validators.extend(Draft202012Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]
    return cls(agent_schema())  # type: ignore[no-any-return]


def _known_keys(schema: Any) -> list[str]:
    return sorted(schema.get("properties", {})) if isinstance(schema, dict) else []


# livekit-agents' names (AgentServer, WorkerOptions, rtc_session) -> where the same setting lives here
LIVEKIT_NAMES = {
    "agent_name": "'name' here: the agent's name, registered with LiveKit unless dispatch is automatic",
    "entrypoint_fnc": "'entrypoint' here",
    "prewarm_fnc": "'setup' here",
    "setup_fnc": "'setup' here",
    "request_fnc": "not carried over: a job is accepted when its metadata passes 'metadata.schema', and "
                   "'participant' sets the agent's identity, name and attributes",
    "on_request": "not carried over: a job is accepted when its metadata passes 'metadata.schema', and "
                  "'participant' sets the agent's identity, name and attributes",
    "num_idle_processes": "'processes.idle' here",
    "initialize_process_timeout": "'processes.init_timeout' here",
    "shutdown_process_timeout": "'shutdown.timeout' here",
    "job_memory_limit_mb": "'limits.memory_limit_mb' here",
    "job_memory_warn_mb": "'limits.memory_warn_mb' here",
    "worker_type": "'job_type' here (room or publisher)",
    "server_type": "'job_type' here (room or publisher)",
    "type": "'job_type' here (room or publisher)",
    "load_threshold": "the host's option --load-threshold of agenthost run here, not an agent's",
    "drain_timeout": "the host's option --drain-timeout of agenthost run here, not an agent's",
    "ws_url": "the option --url (or LIVEKIT_URL) here",
    "api_key": "the option --api-key (or LIVEKIT_API_KEY) here",
    "api_secret": "the option --api-secret (or LIVEKIT_API_SECRET) here",
    "port": "the option --http HOST:PORT of agenthost run here",
    "host": "the option --http HOST:PORT of agenthost run here",
    "permissions": "not carried over: the agent joins with livekit-agents' default permissions",
    "log_level": "the host's option --log-level of agenthost run here, not an agent's",
    "load_fnc": "not carried over: the host reports its own load (its CPU and jobs; agenthost run "
                "--load-threshold)",
    "on_session_end": "run when the entrypoint names the AgentServer it is given to (its "
                      "rtc_session(on_session_end=...)), within 'shutdown.timeout'",
    "session_end_timeout": "'shutdown.timeout' here: the session-end function gets what is left of it",
    "max_retry": "not carried over: the host reconnects to LiveKit without a bound",
    "job_executor_type": "not carried over: every job runs in a process of its own",
    "prometheus_port": "the host's /metrics on agenthost run --http here",
    "http_proxy": "not carried over: the host connects to LiveKit without a proxy",
}


def _unknown_key_hint(path: JsonPath, key: str, known: list[str]) -> str:
    if not path and key in LIVEKIT_NAMES:
        return f" (livekit-agents' {key} is {LIVEKIT_NAMES[key]})"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"


def _has_message(schema: Any) -> bool:
    return isinstance(schema, dict) and "errorMessage" in schema


def _message(error: ValidationError) -> str:
    if error.validator == "type" and error.validator_value == "string" and type(error.instance) in (int, float):
        return f"{error.instance!r} is read as a number, where text is expected: write it in quotes"
    template = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(template, str):
        return template.replace("{value}", repr(error.instance)).replace("{{", "{").replace("}}", "}")
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)  # type: ignore[union-attr]
        return f"{error.instance!r} is not one of {allowed}"
    if error.validator == "required":
        return error.message
    return error.message


def _errors(doc: Document, error: ValidationError) -> list[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = _known_keys(error.schema)
        problems = []
        for key in error.instance:
            if key in known:
                continue
            hint = _unknown_key_hint(path, key, known)
            problems.append(doc.problem((*path, key), f"unknown key {key!r}{hint}", key=True))
        return problems
    if error.validator in ("oneOf", "anyOf") and not _has_message(error.schema) and error.context:
        # Report the most relevant branch rather than "is not valid under any of the given schemas".
        deepest = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.schema_path)))
        return _errors(doc, deepest)
    return [doc.problem(path, _message(error))]


def typed_substitutions(doc: Document) -> None:
    """A value that came from `${VAR}` is text; where the schema takes a number or a boolean there, text that
    reads as one (as YAML reads a plain number or boolean) is one (`memory_limit_mb: ${MEM:-800}` is 800,
    `shutdown: {timeout: ${T:-30}}` 30 seconds). Text that is neither stays text, and the schema says so."""
    for path, (_written, text) in doc.substituted.items():
        types = _types_at(agent_schema(), path)
        if not types or not path or len(text) > 40:  # no number a setting takes is longer
            continue
        parent = _value_at(doc.value, path[:-1])
        if not isinstance(parent, (dict, list)):
            continue
        typed = yaml.safe_load(text) if _PLAIN_TYPED.fullmatch(text.strip()) else None
        if (isinstance(typed, bool) and "boolean" in types) or \
                (isinstance(typed, int) and not isinstance(typed, bool) and types & {"integer", "number"}) or \
                (isinstance(typed, float) and "number" in types):
            parent[path[-1]] = typed  # type: ignore[index]


_PLAIN_TYPED = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9]*)?([eE][-+]?[0-9]+)?|true|false|True|False")


def _types_at(schema: dict[str, Any], path: JsonPath) -> set[str]:
    """The JSON types the agent schema allows at `path` (empty when it cannot tell)."""
    node: Any = schema
    for part in path:
        node = _resolved(schema, node)
        if isinstance(part, int):
            node = node.get("items") if isinstance(node, dict) else None
        else:
            props = node.get("properties", {}) if isinstance(node, dict) else {}
            node = props.get(part)
        if node is None:
            return set()
    return _types_of(schema, _resolved(schema, node))


def _types_of(schema: dict[str, Any], node: Any) -> set[str]:
    """The JSON types `node` allows: its `type`, or those of its `oneOf`/`anyOf` branches together (a duration
    is a number of seconds or a text like `30s`)."""
    if not isinstance(node, dict):
        return set()
    kind = node.get("type")
    if kind is not None:
        return {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else set()
    branches = [b for key in ("oneOf", "anyOf") for b in node.get(key, [])]
    return set().union(*(_types_of(schema, _resolved(schema, b)) for b in branches)) if branches else set()


def _resolved(schema: dict[str, Any], node: Any) -> Any:
    """`node`, its local `$ref` followed."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return target if target is not None else node
    return node


def _value_at(value: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def check_document(doc: Document) -> list[Problem]:
    """Every schema problem in one document."""
    if not isinstance(doc.value, dict):
        kind = "empty" if doc.value is None else type(doc.value).__name__
        return [doc.problem((), f"an agent document must be a mapping, not {kind}")]
    if fast_valid(_fast_validator(), doc.value):
        return []
    problems: list[Problem] = []
    for error in _validator().iter_errors(doc.value):
        problems.extend(_errors(doc, error))
    return problems


@functools.cache
def _fast_validator() -> Any:
    """A compiled validator (jsonschema-rs) of the agent schema."""
    return jsonschema_rs.validator_for(agent_schema())


def fast_valid(validator: Any, value: object) -> bool:
    """Whether the compiled validator says `value` is valid: the fast path for the common case. Any doubt
    (no compiled validator, a value it cannot take, such as NaN) answers False, and the located, detailed
    check runs, so the messages are always the same."""
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(value))
    except Exception:  # a value jsonschema-rs cannot represent
        return False

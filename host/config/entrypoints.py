"""Resolving `entrypoint` and `setup` references to functions.

`load_function` is what a job process uses. `check_functions` is what `validate` and
reload use: it imports the modules in a child process with a time bound, so a module
that hangs, crashes or prints at import cannot hang or break the caller. The child
writes one JSON line per reference on a private pipe (the real stdout), while
anything the imported code prints goes to stderr.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from host.config.definitions import FunctionRef


class EntrypointError(Exception):
    """A function reference does not resolve to a usable function."""


def package_of(path: str) -> tuple[str, str] | None:
    """(the folder above the package, the module's dotted name) of a file inside a package (a folder with an
    `__init__.py`), so that it is imported as part of it and its relative imports work; None otherwise."""
    folder, parts = os.path.dirname(os.path.abspath(path)), [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")) and parts[0].isidentifier():
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    if len(parts) == 1 or not all(p.isidentifier() for p in parts):
        return None
    return folder, ".".join(parts)


def module_name_for_file(path: str) -> str:
    package = package_of(path)
    if package is not None:
        return package[1]
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"agenthost_file_{abs(hash(path)):x}_{stem}"


def load_function(ref: FunctionRef) -> Callable[..., Any]:
    """Import the reference's module and return the function. Raises EntrypointError."""
    fn = load_object(ref)
    if not callable(fn):
        raise EntrypointError(f"{ref.text!r} is not callable")
    return fn


def load_object(ref: FunctionRef) -> object:
    """Import the reference's module and return the named object. Raises EntrypointError."""
    try:
        if ref.file is not None:
            if not os.path.isfile(ref.file):
                raise EntrypointError(missing_file_message(ref))
            name = module_name_for_file(ref.file)
            module = sys.modules.get(name)
            package = package_of(ref.file)
            if module is None and package is not None:
                if package[0] not in sys.path:
                    sys.path.insert(0, package[0])
                module = importlib.import_module(name)
            elif module is None:
                folder = os.path.dirname(ref.file)
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                spec = importlib.util.spec_from_file_location(name, ref.file)
                if spec is None or spec.loader is None:
                    raise EntrypointError(f"cannot import {ref.file!r}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            assert ref.module is not None
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(ref.module)
    except EntrypointError:
        raise
    except ModuleNotFoundError as exc:
        raise EntrypointError(f"cannot import {ref.module or ref.file!r}: {exc}") from exc
    except SystemExit as exc:
        livekit = "livekit.agents" in sys.modules  # only an `api: host` check gets here with livekit-agents loaded
        raise EntrypointError(
            f"importing {ref.module or ref.file!r} raised SystemExit: {exc}: the module ran its program at import "
            "(a call such as cli.run_app(...) or main() at the top level); " + (
                "if it is livekit-agents code, add `api: livekit-agents` to the agent file (agenthost then "
                "imports it without running cli.run_app), or put the call under `if __name__ == \"__main__\":`"
                if livekit else "put it under `if __name__ == \"__main__\":` so that importing the module only "
                "defines the agent")) from exc
    except BaseException as exc:
        raise EntrypointError(f"importing {ref.module or ref.file!r} raised {type(exc).__name__}: {exc}") from exc
    obj = getattr(module, ref.function, None)
    if obj is None:
        raise EntrypointError(f"{ref.module or ref.file!r} has no attribute {ref.function!r}")
    return obj


def missing_file_message(ref: FunctionRef) -> str:
    """Why a file reference does not resolve, with the reference that would, when the file is found nearby:
    paths are read from the agent file's folder, which newcomers expect to be the folder they run in."""
    assert ref.file is not None
    target = ref.text.rpartition(":")[0]
    message = f"file {display(ref.file)!r} does not exist"
    if os.path.isabs(target) or ref.base_dir is None:
        return message
    base = ref.base_dir
    message += f" (a path is read from the agent file's folder, {display(base) or '.'})"
    cwd = os.getcwd()
    folders = [cwd]
    folder = base
    while True:  # the agent file's folder and those above it, up to the working directory
        folder = os.path.dirname(folder)
        folders.append(folder)
        if folder in (cwd, os.path.dirname(folder)) or len(folders) > 8:
            break
    for folder in folders:
        found = os.path.join(folder, target)
        if os.path.isfile(found):
            rel = os.path.relpath(found, base)
            hint = f"; did you mean {rel + ':' + ref.function!r}"
            module = os.path.relpath(found, cwd)[:-3]
            if not module.startswith(".."):
                hint += (f", or the module form {module.replace(os.sep, '.') + ':' + ref.function!r} (imported "
                         "from the folder agenthost runs in)")
            return message + hint + "?"
    return message


def display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def livekit_agents_code(obj: object) -> str | None:
    """What makes `obj` livekit-agents code (an AgentServer, a function taking its JobContext), or None. Read
    without importing livekit-agents: an `api: host` agent may not have it."""
    kind = type(obj)
    if kind.__module__.startswith("livekit.agents") and kind.__name__ in ("AgentServer", "ServerOptions"):
        return f"a livekit-agents {'WorkerOptions' if kind.__name__ == 'ServerOptions' else kind.__name__}"
    if not callable(obj):
        return None
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    for value in vars(module).values() if module is not None else ():
        if type(value).__name__ == "AgentServer" and getattr(value, "_entrypoint_fnc", None) is obj:
            return "a function registered with livekit-agents' @server.rtc_session()"
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params:
        return None
    annotation = params[0].annotation
    if isinstance(annotation, str):  # `from __future__ import annotations`: look the name up where it was written
        first, *rest = annotation.split(".")
        annotation = getattr(obj, "__globals__", {}).get(first)
        for part in rest:  # `agents.JobContext`, `lk.JobContext`
            annotation = getattr(annotation, part, None)
    if (getattr(annotation, "__name__", None) == "JobContext"
            and str(getattr(annotation, "__module__", "")).startswith("livekit.agents")):
        return "a function taking livekit-agents' JobContext"
    return None


def check_loaded(fn: Callable[..., Any], role: str) -> str | None:
    """Why `fn` cannot serve as `role` ('entrypoint' or 'setup'), or None."""
    if role == "entrypoint" and not inspect.iscoroutinefunction(fn):
        return "the entrypoint must be an async function (async def)"
    try:
        inspect.signature(fn).bind(object())
    except TypeError:
        return f"the {role} must take exactly one argument"
    except ValueError:
        pass  # builtins without a signature: give them the benefit of the doubt
    return None

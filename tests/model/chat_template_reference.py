#!/usr/bin/python3
"""Reference Jinja2 renderer for the chat-template tests.

Renders templates with Python Jinja2 set up exactly as Hugging Face transformers sets it up
(see shared/data/chat_templates/README.md), so the C++ interpreter's output can be compared
byte for byte.

stdin: a JSON array of cases {"template": str, "context": {...}, "now": "YYYY-MM-DDTHH:MM:SS"}
stdout: a JSON array, one result per case:
        {"ok": true, "output": str} or
        {"ok": false, "kind": "raise" | "syntax" | "runtime", "error": str}
"kind" is "raise" when the template called raise_exception(message); "error" is then the message.
Exit status 0 unless the input itself is malformed.
"""
import datetime
import json
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception() throws (a TemplateError, as in transformers)."""


def make_env(now):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def raise_exception(message):
        raise RaisedByTemplate(message)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: now.strftime(fmt)
    return env


_ENVS = {}
_TEMPLATES = {}


def render(case):
    now_text = case.get("now", "2024-07-26T12:00:00")
    if now_text not in _ENVS:
        _ENVS[now_text] = make_env(datetime.datetime.fromisoformat(now_text))
    env = _ENVS[now_text]
    try:
        key = (now_text, case["template"])
        if key not in _TEMPLATES:
            _TEMPLATES[key] = env.from_string(case["template"])
        template = _TEMPLATES[key]
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"ok": False, "kind": "syntax", "error": str(e)}
    except Exception as e:  # noqa: BLE001 - any compile-time failure is a syntax-class error
        return {"ok": False, "kind": "syntax", "error": f"{type(e).__name__}: {e}"}
    try:
        return {"ok": True, "output": template.render(**case.get("context", {}))}
    except RaisedByTemplate as e:
        return {"ok": False, "kind": "raise", "error": e.message}
    except Exception as e:  # noqa: BLE001 - report every runtime failure to the caller
        return {"ok": False, "kind": "runtime", "error": f"{type(e).__name__}: {e}"}


def main():
    cases = json.load(sys.stdin)
    json.dump([render(c) for c in cases], sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

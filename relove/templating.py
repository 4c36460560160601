"""Personalised texts: Jinja2, sandboxed and bounded, for broadcasts (and automations, AI
sessions — anything that fills ``{{ user.first_name }}`` into a text).

* **Safe**: Jinja's sandbox (no attribute of Python internals), autoescaping for HTML texts.
* **Bounded**: a render may produce at most :data:`MAX_OUTPUT` characters, and no value inside it
  may grow past that either (``{{ 'a' * 10**8 }}`` is refused before it is computed); it may
  take at most :data:`MAX_STEPS` steps (lookups, calls, operators, filters, loop iterations;
  ``range`` at most :data:`MAX_RANGE` items) and :data:`RENDER_TIMEOUT_S` seconds.
  :meth:`Template.arender` holds the event loop for at most :data:`INLINE_S`; a slower render
  moves to a worker thread.
* **Data as people expect it**: a JSON ``null`` is a missing value (``default(…)`` replaces it,
  ``{% if %}`` is false, a list leaves it out); a list renders as its elements joined by ", ",
  an object as ``key: value`` pairs joined by ", ". A missing key renders empty — never an
  error mid-send.
* **Typos caught early**: a top-level name the template cannot see is refused when the template
  is created, with a suggestion (``{{ first_name }}`` → "did you mean user.first_name?").
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2 import TemplateError as JinjaError
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from relove.errors import InvalidInput

#: Characters a render (and any string, list or object computed inside it) may reach.
MAX_OUTPUT = 65_536
#: Steps one render may take: lookups, calls, operators, filters, loop iterations.
MAX_STEPS = 100_000
#: Items one ``range()`` may produce.
MAX_RANGE = 10_000
#: Seconds one render may take.
RENDER_TIMEOUT_S = 2.0
#: :meth:`Template.arender` first renders on the event loop for at most this long (almost
#: every template needs microseconds; a thread hop would cost more than the render); past it,
#: the render starts again in a worker thread.
INLINE_S = 0.005
#: Bits a whole number computed in a template may have (about 3,000 digits).
_MAX_INT_BITS = 10_000
#: ``str`` methods a template may call (the rest — ljust, center, zfill, expandtabs … — can
#: build huge strings from a small call).
_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "format", "isalnum", "isalpha",
    "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join",
    "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
    "title", "upper",
})  # fmt: skip
#: A ``%`` or ``{}`` format with a width or precision of six digits or more, or a ``*`` width.
_WIDE_FORMAT = re.compile(r"%[^a-zA-Z%]*?(?:\*|\d{6,})|\{[^{}]*?\d{6,}[^{}]*\}")


class TemplateRenderError(InvalidInput):
    """A template failed to render (for one recipient), or passed a limit while rendering."""


class _Slow(Exception):
    """An inline render passed :data:`INLINE_S`: it continues in a thread."""


class _Budget:
    def __init__(self, *, inline: bool) -> None:
        self.steps = 0
        self.inline = inline
        self.deadline = time.monotonic() + (INLINE_S if inline else RENDER_TIMEOUT_S)

    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise TemplateRenderError(f"the template does too much work (more than "
                                      f"{MAX_STEPS:,} steps)")  # fmt: skip
        if self.steps % 64 == 0 and time.monotonic() > self.deadline:
            if self.inline:
                raise _Slow
            raise TemplateRenderError(f"the template takes longer than {RENDER_TIMEOUT_S:g} s")


_budget: ContextVar[_Budget | None] = ContextVar("relove_template_budget", default=None)


def _step(n: int = 1) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step(n)


def _too_big(what: str) -> TemplateRenderError:
    return TemplateRenderError(f"{what} would be longer than {MAX_OUTPUT:,} characters")


def _check_size(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_OUTPUT:
        raise _too_big("a value in the template")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise TemplateRenderError("a number in the template is too large")
    return value


def _check_format(fmt: str) -> None:
    if _WIDE_FORMAT.search(fmt):
        raise TemplateRenderError("a format width or precision in the template is too large")


def _check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    if not isinstance(old, str) or not isinstance(new, str):
        return
    hits = (len(text) + 1) if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * (len(new) - len(old)) > MAX_OUTPUT:
        raise _too_big("the replaced text")


def _check_args(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT:
            raise TemplateRenderError(f"a number passed in the template is above {MAX_OUTPUT:,}")


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise TemplateRenderError(f"range() may produce at most {MAX_RANGE:,} items")
    return r


def _bounded_iter(iterable: Any) -> Iterator[Any]:
    """Every ``{% for %}`` loop iterates through this: one step per item."""
    for item in iterable:
        _step()
        yield item


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)  # keeps jinja's pass_context / pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        values = [a for a in args if not _is_jinja_context(a)]
        _check_args([*values[1:], *kwargs.values()])  # widths and counts, not the value itself
        if name == "replace" and values and isinstance(values[0], str):
            _check_replace(*values[:4])
        if name == "format" and values and isinstance(values[0], str):
            _check_format(values[0])
        return _check_size(f(*args, **kwargs))

    return bounded


def _is_jinja_context(value: Any) -> bool:
    return type(value).__module__.startswith("jinja2.")


def _display(value: Any) -> Any:
    """How ``{{ value }}`` shows a value: null as nothing, a list as "a, b", an object as
    "key: value, key2: value2"."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(_display(v)) for v in value if v is not None)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_display(v)}" for k, v in value.items() if v is not None)
    return value


def without_nulls(value: Any) -> Any:
    """JSON data as templates see it: a ``null`` is missing — an object key holding it is
    absent, a list leaves it out."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


class _Environment(SandboxedEnvironment):
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=ChainableUndefined,
                         keep_trailing_newline=True, finalize=_display)  # fmt: skip
        self.globals["range"] = _bounded_range
        self.globals["__relove_iter__"] = _bounded_iter
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _step()
        seq = (str, list, tuple)
        if operator == "*":
            for a, b in ((left, right), (right, left)):
                if isinstance(a, seq) and isinstance(b, int) and len(a) * b > MAX_OUTPUT:
                    raise _too_big("the repeated value")
        elif operator == "+" and isinstance(left, seq) and isinstance(right, seq):
            if len(left) + len(right) > MAX_OUTPUT:
                raise _too_big("the joined value")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * math.log2(abs(left)) > _MAX_INT_BITS:
                raise TemplateRenderError("a power in the template is too large")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return _check_size(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        _step()
        return super().call_unop(context, operator, arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        _check_str_method(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        _check_str_method(obj, argument)
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _step()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str) and getattr(method, "__name__", "") == "replace":
            _check_replace(owner, *args[:3])
        return _check_size(super().call(__context, __obj, *args, **kwargs))


def _check_str_method(obj: Any, name: Any) -> None:
    """Reaching a method of a string: only the harmless ones, and a format without huge
    widths (checked here: the sandbox hands ``str.format`` over wrapped)."""
    if not isinstance(obj, str) or not isinstance(name, str) or not hasattr(str, name):
        return
    if name.startswith("_"):
        return  # the sandbox refuses these itself
    if name not in _STR_METHODS:
        raise SecurityError(f"str.{name}() is not available in templates")
    if name in ("format", "format_map"):
        _check_format(obj)


def _bound_loops(tree: nodes.Template) -> nodes.Template:
    """Every ``{% for x in seq %}`` iterates ``__relove_iter__(seq)``: counted, so loops nested
    over data are bounded by the step budget too."""
    for loop in tree.find_all(nodes.For):
        call = nodes.Call(nodes.Name("__relove_iter__", "load"), [loop.iter], [], None, None)
        loop.iter = call.set_lineno(loop.lineno)
    return tree


_ENVIRONMENTS: dict[bool, _Environment] = {}


def _environment(autoescape: bool) -> _Environment:
    env = _ENVIRONMENTS.get(autoescape)
    if env is None:
        env = _ENVIRONMENTS[autoescape] = _Environment(autoescape=autoescape)
    return env


class Template:
    """A compiled, checked template.

    ``names`` maps each top-level name the template may use to the attributes known to live
    under it (for suggestions): ``{"user": ["first_name", …], "markers": [], "context": []}``.
    ``guess`` is where an unknown bare name most likely lives (``{{ city }}`` →
    ``markers.city``). ``check_names=False`` compiles a template saved before the names were
    checked (its unknown names render empty, as they did)."""

    def __init__(
        self,
        text: str,
        *,
        names: Mapping[str, Sequence[str]],
        guess: str | None = None,
        autoescape: bool = True,
        check_names: bool = True,
    ) -> None:
        self.env = _environment(autoescape)
        try:
            tree = self.env.parse(text)
            unknown = sorted(find_undeclared_variables(tree) - set(names) - set(self.env.globals))
            if unknown and check_names:
                raise InvalidInput(_unknown_name(unknown[0], names, guess))
            self._template = self.env.from_string(_bound_loops(tree))
        except JinjaError as e:
            line = getattr(e, "lineno", None)
            where = f" (line {line})" if line else ""
            raise InvalidInput(f"template error{where}: {e.message or e}") from e

    def render(self, variables: Mapping[str, Any]) -> str:
        """The text for ``variables`` (synchronous; bounded in output, steps and time)."""
        return self._render(variables, inline=False)

    def _render(self, variables: Mapping[str, Any], *, inline: bool) -> str:
        token = _budget.set(_Budget(inline=inline))
        try:
            out: list[str] = []
            size = 0
            for chunk in self._template.generate(without_nulls(dict(variables))):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise _too_big("the rendered text")
                out.append(chunk)
            return "".join(out)
        except (TemplateRenderError, _Slow):
            raise
        except Exception as e:  # any error inside the sandbox is the template's
            raise TemplateRenderError(f"template error: {e}") from e
        finally:
            _budget.reset(token)

    async def arender(self, variables: Mapping[str, Any]) -> str:
        """:meth:`render` without holding up the event loop for more than :data:`INLINE_S`:
        a render that takes longer starts again in a worker thread."""
        try:
            return self._render(variables, inline=True)
        except _Slow:
            pass
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.render, variables),
                                          RENDER_TIMEOUT_S * 2)  # fmt: skip
        except TimeoutError as e:
            raise TemplateRenderError(
                f"the template takes longer than {RENDER_TIMEOUT_S:g} s"
            ) from e


def _unknown_name(name: str, names: Mapping[str, Sequence[str]], guess: str | None) -> str:
    message = f"unknown name {name!r} in the template"
    sees = f"(the template sees {', '.join(sorted(names))})"
    hint = next((f"{top}.{name}" for top, attributes in names.items() if name in attributes),
                None)  # fmt: skip
    if hint is None:
        close = difflib.get_close_matches(name, list(names), n=1)
        hint = close[0] if close else (f"{guess}.{name}" if guess else None)
    return f"{message}: did you mean {hint}? {sees}" if hint else f"{message} {sees}"

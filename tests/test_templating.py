"""relove/templating.py: templates are bounded in output and work, render off the event loop,
show data as people expect it, and refuse unknown names at creation with a suggestion."""

from __future__ import annotations

import asyncio

import pytest

from relove.errors import InvalidInput
from relove.templating import (
    MAX_OUTPUT,
    MAX_RANGE,
    MAX_STEPS,
    Template,
    TemplateRenderError,
)

NAMES = {"user": ("id", "first_name", "last_name", "username"), "markers": (), "context": ()}
DATA = {
    "user": {"id": 1, "first_name": "<b>Аня</b>", "last_name": "", "username": "anya"},
    "markers": {"city": None, "tags": ["йога", None, "арт"], "profile": {"age": 30, "x": None},
                "big": "a" * 60_000, "vip": False},
    "context": {},
}  # fmt: skip


def render(text: str, data: dict | None = None) -> str:
    return Template(text, names=NAMES, guess="markers").render(data or DATA)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ 'a' * 10**8 }}", "longer than"),  # took 5.4 s and 460 MB before being refused
        ("{{ 'a' * 10**9 }}", "longer than"),  # ran on
        ("{{ [1, 2] * 10**8 }}", "longer than"),
        ("{{ 10 ** 100000 }}", "too large"),
        ("{% for i in range(10**6) %}{% endfor %}", f"at most {MAX_RANGE:,} items"),
        ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
         f"more than {MAX_STEPS:,} steps"),
        ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
         "steps"),
        ("{% for i in range(9999) %}{{ markers.big }}{% endfor %}", "rendered text"),
        ("{{ markers.big ~ markers.big }}", "longer than"),
        ("{{ markers.big | replace('a', 'aa') }}", "longer than"),
        ("{{ markers.big.replace('a', 'aa') }}", "longer than"),
        ("{{ 'x' | center(10**9) }}", "above"),
        ("{{ 'x'.ljust(10**9) }}", "not available"),
        ("{{ '%999999999d' % 1 }}", "format width"),
        ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ],
)
def test_bombs_are_refused_with_one_line(text, fragment):
    with pytest.raises(TemplateRenderError) as info:
        render(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_what_fits_renders():
    assert render("{{ 'ab' * 10 }}") == "ab" * 10
    assert len(render("{{ markers.big | center(65000) }}")) == 65_000
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}") == "012"
    assert render("{{ 2 ** 64 }}") == str(2**64)
    assert render("{{ '%05d' % 42 }} {{ '{:>4}'.format(7) }}") == "00042    7"


def test_json_null_is_missing_and_lists_and_objects_read_naturally():
    assert render("{{ markers.city }}") == ""
    assert render("{{ markers.city | default('—') }}") == "—"
    assert render("{% if markers.city %}yes{% else %}no{% endif %}") == "no"
    assert render("{{ markers.nope.deeper | default('d') }}") == "d"  # missing keys are fine
    assert render("{{ markers.tags }}") == "йога, арт"
    assert render("{{ markers.profile }}") == "age: 30"
    assert render("{{ markers.tags | join(' / ') }} {{ markers.tags | length }}") == "йога / арт 2"
    assert render("{{ user.__class__ }}") == ""  # the sandbox hides Python internals
    assert render("{{ user.first_name }}") == "&lt;b&gt;Аня&lt;/b&gt;"  # data is text
    assert render("{{ markers.vip }}") == "False"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Hi {{ first_name }}", "did you mean user.first_name?"),
        ("{{ city | default('') }}", "did you mean markers.city?"),
        ("{{ usr.first_name }}", "did you mean user?"),
        ("{% if vip %}x{% endif %}", "did you mean markers.vip?"),
    ],
)
def test_unknown_top_level_names_are_refused_at_creation(text, hint):
    with pytest.raises(InvalidInput) as info:
        Template(text, names=NAMES, guess="markers")
    assert hint in str(info.value) and "unknown name" in str(info.value)


def test_names_the_template_defines_or_jinja_provides_are_fine():
    text = ("{% set n = 2 %}{% for t in markers.tags %}{{ loop.index }}{% endfor %}"
            "{{ n }}{{ range(2) | list | length }}")  # fmt: skip
    assert render(text) == "1222"


async def test_a_slow_render_leaves_the_event_loop_free():
    """A legitimate but slow template renders in a worker thread: other coroutines keep
    running meanwhile (a render on the loop would run them only after it)."""
    template = Template("{% for i in range(9000) %}{% for c in 'abcdefgh' %}{% endfor %}"
                        "{% endfor %}done", names=NAMES)  # fmt: skip
    ticks = 0
    render_done = False
    ticks_while_rendering = 0

    async def ticker() -> None:
        nonlocal ticks, ticks_while_rendering
        while not render_done:
            ticks += 1
            await asyncio.sleep(0)
        ticks_while_rendering = ticks

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    assert await template.arender(DATA) == "done"
    render_done = True
    await task
    assert ticks_while_rendering > 1
    assert await Template("{{ user.id }}", names=NAMES).arender(DATA) == "1"
    with pytest.raises(TemplateRenderError, match="steps"):
        await Template("{% for i in range(9999) %}{% for j in range(99) %}{% endfor %}"
                       "{% endfor %}", names=NAMES).arender(DATA)  # fmt: skip


def test_output_limit_is_the_documented_figure():
    assert MAX_OUTPUT == 65_536

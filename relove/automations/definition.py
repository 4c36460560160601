"""Automation definitions: the YAML file, checked whole, compiled to a flat program per automation.

A file is refused with ONE line per problem, ``file:line: path: reason``
(``automations.yaml:12: automations[0].steps[2].wait: '3x' is not a duration``), and nothing of
it is used; the worker then keeps the automations it had.

Steps are flattened: ``if`` becomes a step with two successors (``next`` when the condition holds,
``orelse`` when not) and its branches are steps of their own. A run remembers the id of the step
it is at; an id is the step's ``id:`` when given, else its position (``3``, ``3.then.1``), so give
ids to steps of an automation you will edit while people are in it (docs/automations.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter

from relove.automations.localtime import parse_hhmm
from relove.broadcasts.content import MessageContent, MessageTemplate, Recipient
from relove.conversation.scenarios.model import load_scenarios
from relove.conversation.yamlfile import DefinitionError, LineDict, LineList, load_yaml
from relove.db.types import utcnow
from relove.errors import InvalidInput, ReloveError
from relove.events.catalog import check_name
from relove.segments.evaluator import evaluate
from relove.segments.lower import lower_props, uses_events
from relove.segments.parser import parse_filter, parse_props_filter
from relove.segments.primitives import Pred
from relove.telegram.html import check_html
from relove.telegram.message import Button, MediaKind
from relove.users.paths import check_value, parse_path

ID_RE = re.compile(r"[a-z0-9_]{1,64}")
STEP_ID_RE = re.compile(r"[a-z0-9_]{1,40}")
_DURATION_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
#: Longest wait and cooldown (a run waiting longer is almost surely a typo).
MAX_DURATION = timedelta(days=366)

#: The action of a step: its key in the YAML.
ACTIONS = ("send", "wait", "if", "set", "unset", "increment", "tag", "untag", "emit",
           "notify_admins", "start_flow")  # fmt: skip
#: Actions of the issue not implemented yet: refused with a clear line rather than ignored.
NOT_YET: tuple[str, ...] = ()
TAGS_KEY = "tags"


class AutomationFileError(InvalidInput):
    """A file that cannot be used: every problem, one line each (``lines``)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h30m"``, ``"1d"``, ``"2w"`` → a positive :class:`timedelta`."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a duration (like 30m, 1h, 1d, 2w)")
    text = value.strip().lower()
    pos, total = 0, timedelta()
    for m in _DURATION_PART.finditer(text):
        if text[pos : m.start()].strip():
            break
        total += timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"{value!r} is not a duration (like 30m, 1h, 1d, 2w)")
    if total <= timedelta() or total > MAX_DURATION:
        raise ValueError(f"{value!r} must be more than 0 and at most 366 days")
    return total


@dataclass(frozen=True, slots=True)
class Reentry:
    """May a user enter again? ``once`` (never), ``always`` (whenever the trigger fires and
    they are not in it right now), ``cooldown`` (when the last entry is older than it)."""

    mode: str = "once"
    cooldown: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the flat program. ``next``: the step after it (``None``: the end);
    for ``if``, ``next`` when the condition holds and ``orelse`` when it does not."""

    id: str
    kind: str
    args: Mapping[str, Any]
    next: str | None
    orelse: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Automation:
    id: str
    trigger: Trigger
    steps: Mapping[str, Step]
    first: str | None
    when: str | None = None
    stop_when: str | None = None
    reentry: Reentry = Reentry()
    line: int = 0

    @property
    def event(self) -> str:
        """The triggering event's name ("" for schedule and enters triggers)."""
        return self.trigger.event

    @property
    def props(self) -> Mapping[str, Any]:
        return self.trigger.props

    def props_filter(self, now: datetime) -> Pred | None:
        """The trigger's ``where`` as primitives (relative dates as of ``now``)."""
        where = self.trigger.where
        return None if where is None else lower_props(parse_props_filter(where), now=now)

    def matches_props(self, props: Mapping[str, Any] | None,
                      where: Pred | None = None) -> bool:  # fmt: skip
        """The trigger's ``props`` are a subset of the event's (JSON equality) and its
        ``where`` (lowered by :meth:`props_filter`) holds on them."""
        have = props or {}
        if not all(k in have and _same(have[k], v) for k, v in self.props.items()):
            return False
        return where is None or evaluate(where, {"props": dict(have)})


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return isinstance(a, bool) == isinstance(b, bool) and bool(a == b)


@dataclass(frozen=True, slots=True)
class AutomationFile:
    automations: tuple[Automation, ...] = ()
    source: str = ""

    def get(self, automation_id: str) -> Automation | None:
        return next((a for a in self.automations if a.id == automation_id), None)

    def triggered_by(self, event: str) -> list[Automation]:
        return [a for a in self.automations if a.event and a.event == event]

    @property
    def events(self) -> set[str]:
        """Names of the events that trigger an automation."""
        return {a.event for a in self.automations if a.event}

    def of_kind(self, kind: str) -> list[Automation]:
        """The automations whose trigger is ``event``, ``schedule`` or ``enters``."""
        return [a for a in self.automations if a.trigger.kind == kind]


# -- checking ----------------------------------------------------------------------------------
@dataclass
class _Checker:
    source: str
    base_dir: Path | None
    #: ids of the scenario flows ``start_flow`` may name (None: no scenarios file)
    flows: Collection[str] | None = None
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [text for _, text in sorted(self.problems)]

    def problem(self, node: Any, key: Any, path: str, reason: str) -> None:
        line = _line(node, key)
        where = f"{self.source}:{line}" if line else self.source
        self.problems.append((line, f"{where}: {path}: {reason}" if where else f"{path}: {reason}"))


def _line(node: Any, key: Any = None) -> int:
    if isinstance(node, LineDict) and key is not None and key in node.key_lines:
        return node.key_lines[key]
    if isinstance(node, LineList) and isinstance(key, int) and 0 <= key < len(node.item_lines):
        return node.item_lines[key]
    return int(getattr(node, "line", 0) or 0)


def _condition(c: _Checker, node: Any, key: str, path: str) -> str | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        c.problem(node, key, f"{path}.{key}", "expected a filter (segment language) as text")
        return None
    try:
        parse_filter(value)
    except ReloveError as e:
        c.problem(node, key, f"{path}.{key}", str(e).splitlines()[0])
        return None
    return value


def _reentry(c: _Checker, node: Any, path: str) -> Reentry:
    value = node.get("reentry", "once")
    if value in ("once", "always"):
        return Reentry(value)
    if isinstance(value, Mapping) and set(value) == {"cooldown"}:
        try:
            return Reentry("cooldown", parse_duration(value["cooldown"]))
        except ValueError as e:
            c.problem(value, "cooldown", f"{path}.reentry.cooldown", str(e))
            return Reentry()
    c.problem(node, "reentry", f"{path}.reentry",
              "expected once, always or {cooldown: <duration>}")  # fmt: skip
    return Reentry()


@dataclass(frozen=True, slots=True)
class Trigger:
    """What enters users: an event (``event``, with ``props`` equality and a ``where`` filter on
    its props), a cron ``schedule`` (with a ``filter`` over users) or ``enters`` (a filter —
    typically ``segment:"vip"`` — users come to match)."""

    event: str = ""
    props: Mapping[str, Any] = field(default_factory=dict)
    where: str | None = None
    schedule: str | None = None
    filter: str | None = None
    enters: str | None = None

    @property
    def kind(self) -> str:
        return "schedule" if self.schedule else "enters" if self.enters else "event"

    @property
    def spec(self) -> str:
        """The trigger's definition as text: a schedule or enters trigger whose spec changed
        starts afresh (docs/automations.md)."""
        if self.schedule:
            text = f"schedule {self.schedule} | {self.filter or ''}"
        else:
            text = f"enters {self.enters}" if self.enters else f"event {self.event}"
        if len(text) <= 200:
            return text
        return f"{self.kind} sha256:{hashlib.sha256(text.encode()).hexdigest()}"

    def describe(self) -> str:
        """One line for people: ``user.created {plan: "pro"} where amount > 10``,
        ``schedule 0 10 * * * (tz) filter …``, ``enters segment:"vip"``."""
        if self.schedule:
            return f"schedule {self.schedule}" + (f" filter {self.filter}" if self.filter else "")
        if self.enters:
            return f"enters {self.enters}"
        props = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}"
                          for k, v in self.props.items())  # fmt: skip
        text = f"{self.event} {{{props}}}" if props else self.event
        return f"{text} where {self.where}" if self.where else text


_TRIGGER_HELP = ("expected {event: <name>} (optionally props: {…}, where: '<filter on props>'), "
                 "{schedule: '<cron>', filter: '<filter>'} or {enters: '<filter>'}")


def _trigger(c: _Checker, node: Any, path: str) -> Trigger:
    trig = node.get("trigger")
    if not isinstance(trig, Mapping):
        c.problem(node, "trigger" if "trigger" in node else None, f"{path}.trigger",
                  _TRIGGER_HELP)  # fmt: skip
        return Trigger()
    kinds = [k for k in ("event", "schedule", "enters") if k in trig]
    allowed = {"event": {"event", "props", "where"}, "schedule": {"schedule", "filter"},
               "enters": {"enters"}}  # fmt: skip
    if len(kinds) != 1:
        c.problem(trig, None, f"{path}.trigger", "a trigger has exactly one of event, schedule, "
                  "enters")  # fmt: skip
        return Trigger()
    kind = kinds[0]
    for key in trig:
        if key not in allowed[kind]:
            c.problem(trig, key, f"{path}.trigger.{key}",
                      f"unknown key {key!r} for a{'n' if kind == 'event' else ''} {kind} "
                      f"trigger (allowed: {', '.join(sorted(allowed[kind]))})")  # fmt: skip
    if kind == "schedule":
        return Trigger(schedule=_cron(c, trig, path),
                       filter=_condition(c, trig, "filter", f"{path}.trigger"))  # fmt: skip
    if kind == "enters":
        enters = _condition(c, trig, "enters", f"{path}.trigger")
        if enters is not None and uses_events(parse_filter(enters)):
            c.problem(trig, "enters", f"{path}.trigger.enters", "did … cannot be used in "
                      "enters: membership is re-checked on marker and user events only")
        return Trigger(enters=enters)
    event = trig.get("event")
    if not isinstance(event, str):
        c.problem(trig, "event", f"{path}.trigger.event", "expected an event name")
        event = ""
    else:
        try:
            check_name(event)
        except InvalidInput as e:
            c.problem(trig, "event", f"{path}.trigger.event", str(e))
    props = trig.get("props") or {}
    if not isinstance(props, Mapping):
        c.problem(trig, "props", f"{path}.trigger.props", "expected a mapping of key: value")
        props = {}
    return Trigger(event, dict(props), _props_condition(c, trig, f"{path}.trigger"))


def _props_condition(c: _Checker, node: Any, path: str) -> str | None:
    value = node.get("where")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        c.problem(node, "where", f"{path}.where", "expected a filter on the event's props as text")
        return None
    try:
        lower_props(parse_props_filter(value), now=utcnow())
    except ReloveError as e:
        c.problem(node, "where", f"{path}.where", str(e).splitlines()[0])
        return None
    return value


def _cron(c: _Checker, node: Any, path: str) -> str | None:
    value = node.get("schedule")
    if not isinstance(value, str) or not croniter.is_valid(value) or len(value.split()) != 5:
        c.problem(node, "schedule", f"{path}.trigger.schedule",
                  f"{value!r} is not a cron expression (minute hour day month weekday, "
                  "like \"0 10 * * *\")")  # fmt: skip
        return None
    return value


def _texts(value: Any) -> list[str] | None:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


def _message(c: _Checker, node: Any, key: str, path: str) -> MessageTemplate | None:
    spec = node[key]
    if isinstance(spec, str):
        spec = {"text": spec}
    if not isinstance(spec, Mapping):
        c.problem(node, key, path, "expected text or {text, buttons, photo, document}")
        return None
    unknown = set(spec) - {"text", "template_file", "buttons", "photo", "document"}
    for k in sorted(unknown):
        c.problem(spec, k, f"{path}.{k}", f"unknown key {k!r}")
    text = spec.get("text")
    if "template_file" in spec:
        name = spec["template_file"]
        file = (self_dir := c.base_dir or Path(".")) / str(name)
        try:
            if ".." in Path(str(name)).parts or Path(str(name)).is_absolute():
                raise OSError("must be a file next to the automations file")
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            c.problem(spec, "template_file", f"{path}.template_file",
                      f"cannot read {name!r} in {self_dir}: {e}")  # fmt: skip
            return None
    if not isinstance(text, str):
        c.problem(spec, "text" if "text" in spec else None, f"{path}.text", "expected the text")
        return None
    media_kind, media = None, None
    for kind in ("photo", "document"):
        if kind in spec:
            media_kind, media = MediaKind(kind), str(spec[kind])
    rows: list[tuple[Button, ...]] = []
    buttons = spec.get("buttons") or []
    if not isinstance(buttons, list):
        c.problem(spec, "buttons", f"{path}.buttons", "expected a list of {label, url}")
        buttons = []
    for i, item in enumerate(buttons):
        row_items = item if isinstance(item, list) else [item]
        row = []
        for b in row_items:
            if not isinstance(b, Mapping) or set(b) != {"label", "url"}:
                c.problem(buttons, i, f"{path}.buttons[{i}]", "expected {label: …, url: …}")
                continue
            try:
                row.append(Button(str(b["label"]), str(b["url"])).checked())
            except InvalidInput as e:
                c.problem(buttons, i, f"{path}.buttons[{i}]", str(e))
        if row:
            rows.append(tuple(row))
    try:
        template = MessageTemplate(MessageContent(text, media_kind, media, tuple(rows)))
        # rendered for a sample user, its HTML must pass Telegram's rules (as broadcasts')
        sample = template.render(Recipient(id=1, username="sample", first_name="Аня"))
        check_html(sample.text, limit=template.limit, allow_empty=media_kind is not None)
        return template
    except ReloveError as e:
        at, at_key = (node, key) if isinstance(node[key], str) else (spec, "text")
        c.problem(at, at_key if at_key in at else None, f"{path}.text",
                  str(e).splitlines()[0])  # fmt: skip
        return None


def _markers(c: _Checker, node: Any, key: str, path: str) -> dict[str, Any] | None:
    value = node[key]
    if key in ("unset", "tag", "untag"):
        names = _texts(value)
        if names is None:
            c.problem(node, key, path, "expected a name or a list of names")
            return None
        if key == "unset":
            for name in names:
                try:
                    parse_path(name)
                except InvalidInput as e:
                    c.problem(node, key, path, str(e))
        return {"names": names}
    if key == "increment" and isinstance(value, str):
        value = {value: 1}
    if not isinstance(value, Mapping) or not value:
        c.problem(node, key, path, "expected a mapping of marker: value")
        return None
    for k, v in value.items():
        try:
            parse_path(str(k))
            if key == "increment" and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise InvalidInput(f"increment {k!r} by a number, not {v!r}")
            check_value(v)
        except InvalidInput as e:
            c.problem(value, k, f"{path}.{k}", str(e))
    return {"values": dict(value)}


def _emit(c: _Checker, node: Any, path: str) -> dict[str, Any] | None:
    value = node["emit"]
    if isinstance(value, str):
        value = {"event": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("event"), str):
        c.problem(node, "emit", path, "expected an event name or {event: <name>, props: {…}}")
        return None
    try:
        check_name(value["event"])
    except InvalidInput as e:
        if isinstance(node["emit"], str):
            c.problem(node, "emit", path, str(e))
        else:
            c.problem(value, "event", f"{path}.event", str(e))
        return None
    props = value.get("props") or {}
    if not isinstance(props, Mapping):
        c.problem(value, "props", f"{path}.props", "expected a mapping")
        return None
    return {"event": value["event"], "props": dict(props)}


def _step_args(c: _Checker, node: Any, kind: str, path: str) -> dict[str, Any] | None:
    if kind in ("send", "notify_admins"):
        template = _message(c, node, kind, path)
        return None if template is None else {"template": template}
    if kind == "wait":
        value = node["wait"]
        if isinstance(value, Mapping) and set(value) == {"for"}:
            value = value["for"]
        elif isinstance(value, Mapping) and set(value) == {"until"}:
            try:
                return {"until": parse_hhmm(value["until"])}
            except ValueError as e:
                c.problem(value, "until", f"{path}.until", str(e))
                return None
        elif isinstance(value, Mapping):
            c.problem(node, "wait", path, "expected a duration (1d) or {until: \"10:00\"}")
            return None
        try:
            return {"duration": parse_duration(value)}
        except ValueError as e:
            c.problem(node, "wait", path, str(e))
            return None
    if kind in ("set", "unset", "increment", "tag", "untag"):
        return _markers(c, node, kind, path)
    if kind == "emit":
        return _emit(c, node, path)
    if kind == "start_flow":
        value = node["start_flow"]
        if not isinstance(value, str) or not value:
            c.problem(node, kind, path, "expected a scenario flow id")
        elif c.flows is None:
            c.problem(node, kind, path, f"no scenario {value!r}: no scenarios file "
                      "(RELOVE_SCENARIOS_FILE) is set")  # fmt: skip
        elif value not in c.flows:
            known = ", ".join(sorted(c.flows)) or "none"
            c.problem(node, kind, path, f"no scenario {value!r} in the scenarios file "
                      f"(known: {known})")  # fmt: skip
        else:
            return {"flow": value}
        return None
    if kind == "if":
        cond = _condition(c, node, "if", path.removesuffix(".if"))
        return None if cond is None else {"condition": cond}
    raise AssertionError(kind)


def _flatten(
    c: _Checker, items: Any, path: str, prefix: str, after: str | None,
    out: dict[str, Step], parent: Any, parent_key: Any,
) -> str | None:
    """Check a list of steps, add them to ``out``; the id of the first (``after`` if empty)."""
    if not isinstance(items, list) or not items:
        c.problem(parent, parent_key, path, "expected a non-empty list of steps")
        return after
    ids: list[str] = []
    for i, item in enumerate(items):
        explicit = item.get("id") if isinstance(item, Mapping) else None
        if explicit is not None and (not isinstance(explicit, str)
                                     or not STEP_ID_RE.fullmatch(explicit)):
            c.problem(item, "id", f"{path}[{i}].id",
                      "a step id is 1-40 of a-z, 0-9 and _")  # fmt: skip
            explicit = None
        ids.append(explicit or f"{prefix}{i + 1}")
    for i in reversed(range(len(items))):
        item, sid, here = items[i], ids[i], f"{path}[{i}]"
        nxt = ids[i + 1] if i + 1 < len(items) else after
        if not isinstance(item, Mapping):
            c.problem(items, i, here, f"expected a step: one of {', '.join(ACTIONS)}")
            continue
        kinds = [k for k in item if k in ACTIONS or k in NOT_YET]
        extra = set(item) - set(kinds) - {"id"} - ({"then", "else"} if "if" in item else set())
        for k in sorted(extra, key=str):
            c.problem(item, k, f"{here}.{k}", f"unknown key {k!r}; a step is one of "
                      + ", ".join(ACTIONS))  # fmt: skip
        if len(kinds) != 1:
            if not extra:
                c.problem(items, i, here, "a step has exactly one action: "
                          + ", ".join(ACTIONS))  # fmt: skip
            continue
        kind = kinds[0]
        if kind in NOT_YET:
            c.problem(item, kind, f"{here}.{kind}", f"{kind} is not supported yet")
            continue
        if sid in out:
            c.problem(item, "id" if "id" in item else None, f"{here}.id",
                      f"step id {sid!r} is used twice")  # fmt: skip
            continue
        args = _step_args(c, item, kind, f"{here}.{kind}")
        orelse = None
        if kind == "if":
            if "then" not in item:
                c.problem(item, "if", f"{here}.then", "an if needs then: [steps]")
            else:
                nxt = _flatten(c, item["then"], f"{here}.then", f"{sid}.then.", nxt, out,
                               item, "then")  # fmt: skip
            orelse = (_flatten(c, item["else"], f"{here}.else", f"{sid}.else.", ids[i + 1]
                               if i + 1 < len(items) else after, out, item, "else")
                      if "else" in item else (ids[i + 1] if i + 1 < len(items) else after))
        if args is not None:
            out[sid] = Step(sid, kind, args, nxt, orelse, _line(items, i))
    return ids[0]


def _automation(c: _Checker, node: Any, path: str) -> Automation | None:
    if not isinstance(node, Mapping):
        c.problem(node, None, path, "expected an automation (id, trigger, steps)")
        return None
    known = {"id", "trigger", "when", "stop_when", "reentry", "steps", "description"}
    for k in sorted(set(node) - known, key=str):
        c.problem(node, k, f"{path}.{k}", f"unknown key {k!r}")
    aid = node.get("id")
    if not isinstance(aid, str) or not ID_RE.fullmatch(aid):
        c.problem(node, "id" if "id" in node else None, f"{path}.id",
                  "an automation id is 1-64 of a-z, 0-9 and _")  # fmt: skip
        aid = ""
    trigger = _trigger(c, node, path)
    when = _condition(c, node, "when", path)
    stop_when = _condition(c, node, "stop_when", path)
    reentry = _reentry(c, node, path)
    steps: dict[str, Step] = {}
    first = _flatten(c, node.get("steps"), f"{path}.steps", "", None, steps, node,
                     "steps" if "steps" in node else None)  # fmt: skip
    return Automation(aid, trigger, steps, first, when, stop_when, reentry, _line(node))


def parse_automations(text: str, source: str = "", base_dir: Path | None = None,
                      flows: Collection[str] | None = None) -> AutomationFile:  # fmt: skip
    """Check and compile a file's text; :class:`AutomationFileError` lists every problem.
    ``flows``: the scenario flow ids ``start_flow`` may name (None: there is no scenarios
    file, and ``start_flow`` is refused)."""
    try:
        data = load_yaml(text, source)
    except DefinitionError as e:
        raise AutomationFileError([str(e)]) from None
    c = _Checker(source, base_dir, flows)
    if data is None:
        data = {"automations": []}
    if not isinstance(data, Mapping) or not isinstance(data.get("automations", []), list):
        raise AutomationFileError([f"{source}:1: automations: expected "
                                   "'automations:' with a list of automations"])
    for k in sorted(set(data) - {"automations"}, key=str):
        c.problem(data, k, k, f"unknown key {k!r}")
    items = data.get("automations") or []
    found: list[Automation] = []
    seen: set[str] = set()
    for i, node in enumerate(items):
        auto = _automation(c, node, f"automations[{i}]")
        if auto is None or not auto.id:
            continue
        if auto.id in seen:
            c.problem(node, "id", f"automations[{i}].id",
                      f"automation id {auto.id!r} is used twice")  # fmt: skip
        seen.add(auto.id)
        found.append(auto)
    if c.problems:
        raise AutomationFileError(c.lines)
    return AutomationFile(tuple(found), source)


def load_automations(path: Path, flows: Collection[str] | None = None) -> AutomationFile:
    """Read and check the file at ``path`` (:class:`AutomationFileError` if it is unusable);
    ``flows`` as for :func:`parse_automations`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AutomationFileError([f"{path}: cannot read the file: {e}"]) from None
    return parse_automations(text, str(path), path.parent, flows)


def scenario_flow_ids(path: Path | None) -> frozenset[str] | None:
    """The flow ids of a scenarios file (None without one); a broken scenarios file is an
    :class:`AutomationFileError` of its own lines."""
    if path is None:
        return None
    try:
        return frozenset(f.id for f in load_scenarios(Path(path)).flows)
    except DefinitionError as e:
        raise AutomationFileError(str(e).splitlines()) from None

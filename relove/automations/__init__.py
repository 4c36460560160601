"""Automations: event-triggered sequences of steps (send, wait, if, markers, emit, notify).

Definitions come from the YAML file at ``RELOVE_AUTOMATIONS_FILE`` (:mod:`.definition`); every
user in an automation is a row of ``automation_runs`` (:mod:`.models`) that the worker
(:mod:`.runner`) advances: triggers are read from the events table by a durable cursor
(:mod:`.intake`), waits are durable timers (``due_at``), and a step's effects happen exactly
once (:mod:`.steps`). See docs/automations.md.
"""

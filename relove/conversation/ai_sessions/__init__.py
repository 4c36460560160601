"""Guided AI sessions: named LLM modes declared in YAML (``modes.py``) that lead a conversation
and end in a structured, validated result (``result.py``), kept in the database
(``models.py``, ``store.py``) and run by :class:`~.service.AISessionService`."""

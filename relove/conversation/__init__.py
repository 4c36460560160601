"""Conversation and personalisation: the LLM companion, rolling summaries, budgets, scenarios
without code, recommendations and gender inference."""

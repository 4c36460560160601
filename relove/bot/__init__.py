"""The Telegram bot: dispatcher factory, middlewares, one router per feature, texts."""

"""Demo data: a few hundred realistic users in the database and, as simulated users who have
started the bot, in the sandbox (so broadcasts to them are delivered)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from relove.db.models import Gender, User
from relove.db.types import utcnow
from relove.sandbox.core import Sandbox

#: the demo's operator: an admin user shown first in the web chat
OPERATOR: dict[str, Any] = {"id": 1000001, "first_name": "Оператор", "last_name": "Демо",
                            "username": "relove_operator", "language_code": "ru"}
FIRST_ID = 500_000_001

RU_MALE = ["Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья",
           "Кирилл", "Михаил", "Никита", "Матвей", "Роман", "Егор", "Иван", "Павел", "Олег"]
RU_FEMALE = ["Анна", "Мария", "Елена", "Ольга", "Наталья", "Екатерина", "Татьяна", "Дарья",
             "Анастасия", "Юлия", "Ирина", "Светлана", "Алина", "Полина", "Ксения", "Вера"]
RU_SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов",
               "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев",
               "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев", "Орлов"]
OTHER = [  # (first name, last name, gender, language)
    ("Oksana", "Shevchenko", "female", "uk"), ("Taras", "Bondarenko", "male", "uk"),
    ("Aigerim", "Nurlanova", "female", "kk"), ("Daniyar", "Seitkali", "male", "kk"),
    ("Nino", "Beridze", "female", "ka"), ("Giorgi", "Kapanadze", "male", "ka"),
    ("Anna", "Müller", "female", "de"), ("Lukas", "Schmidt", "male", "de"),
    ("Emily", "Clarke", "female", "en"), ("James", "Walker", "male", "en"),
    ("Lucía", "García", "female", "es"), ("Mateo", "López", "male", "es"),
    ("Ahmet", "Yılmaz", "male", "tr"), ("Elif", "Demir", "female", "tr"),
    ("Arman", "Grigoryan", "male", "hy"), ("Sofia", "Rossi", "female", "it"),
    ("Alex", None, "unknown", "en"), ("Sasha", None, "unknown", "ru"),
    ("Kim", "Lee", "unknown", "en"),
]
TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
})
CITIES = [("Москва", 30), ("Санкт-Петербург", 18), ("Казань", 6), ("Новосибирск", 5),
          ("Екатеринбург", 5), ("Краснодар", 4), ("Сочи", 4), ("Нижний Новгород", 3),
          ("Тбилиси", 4), ("Ереван", 3), ("Алматы", 3), ("Минск", 3), ("Берлин", 2),
          ("Лиссабон", 2), ("Бали", 2), ("Дубай", 2)]
INTERESTS = ["медитация", "йога", "психология", "путешествия", "ретриты", "дыхательные практики",
             "танцы", "книги", "бизнес", "здоровье", "отношения", "творчество", "астрология",
             "спорт", "музыка"]
SOURCES = [("instagram", 30), ("telegram_channel", 25), ("friend", 15), ("youtube", 10),
           ("vk", 8), ("site", 7), ("podcast", 3), ("ads", 2)]
TAGS = ["вебинар_март", "ретрит_2024", "покупатель", "новичок", "амбассадор", "клуб",
        "марафон", "консультация"]
MESSAGES = ["Привет! Расскажите про ближайший ретрит", "Когда следующий эфир?",
            "Спасибо за практику, было очень тепло", "Можно ссылку на запись?",
            "Хочу в клуб, как присоединиться?", "А есть что-то для новичков?"]


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights)[0]


def _person(rng: random.Random, uid: int) -> dict[str, Any]:
    last: str | None
    if rng.random() < 0.8:
        gender = "female" if rng.random() < 0.6 else "male"
        first = rng.choice(RU_FEMALE if gender == "female" else RU_MALE)
        last = rng.choice(RU_SURNAMES) + ("а" if gender == "female" else "")
        lang = "ru"
        if rng.random() < 0.15:
            last = None
    else:
        first, last, gender, lang = rng.choice(OTHER)
    username = None
    if rng.random() < 0.75:
        base = first.lower().translate(TRANSLIT)
        tail = (last or "").lower().translate(TRANSLIT)[:6]
        username = f"{base}_{tail}{uid % 1000}" if tail else f"{base}{uid % 10000}"
        username = "".join(ch for ch in username if ch.isascii() and (ch.isalnum() or ch == "_"))
    return {"id": uid, "first_name": first, "last_name": last, "username": username or None,
            "language_code": lang, "gender": gender}


def generate_people(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` user rows (column values of ``users``), deterministic for a seed."""
    rng = random.Random(seed)
    now = utcnow()
    rows = []
    for n in range(count):
        person = _person(rng, FIRST_ID + n)
        # Activity spread over 60 days, denser in recent days.
        last_seen = now - timedelta(days=min(rng.expovariate(1 / 12), 60),
                                    seconds=rng.randrange(86400))
        created = last_seen - timedelta(days=rng.uniform(0, 120), seconds=rng.randrange(3600))
        markers: dict[str, Any] = {
            "city": _weighted(rng, CITIES),
            "interests": rng.sample(INTERESTS, rng.randint(1, 4)),
            "source": _weighted(rng, SOURCES),
            "VIP": rng.random() < 0.08,
            "tags": rng.sample(TAGS, rng.choice((0, 1, 1, 2, 3))),
            "score": int(min(100, rng.expovariate(1 / 25))),
        }
        if rng.random() < 0.2:
            markers["purchases"] = rng.randint(1, 6)
        context: dict[str, Any] = {}
        if rng.random() < 0.4:
            context["last_message"] = rng.choice(MESSAGES)
        known = rng.random() < 0.7
        rows.append({
            **person,
            "gender": Gender(person["gender"]) if known else Gender.unknown,
            "is_active": rng.random() > 0.05,
            "markers": markers,
            "context": context,
            "created_at": created,
            "updated_at": last_seen,
            "last_seen_at": last_seen,
        })
    return rows


async def seed_database(engine: AsyncEngine, count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Insert ``count`` generated users in one set-based statement per chunk; return the rows."""
    rows = generate_people(count, seed=seed)
    columns = {c.name for c in User.__table__.columns}
    values = [{k: v for k, v in row.items() if k in columns} for row in rows]
    async with engine.begin() as conn:
        for start in range(0, len(values), 1000):
            await conn.execute(insert(User.__table__), values[start:start + 1000])
    return rows


def add_to_sandbox(sb: Sandbox, people: list[dict[str, Any]]) -> None:
    """The seeded users as simulated users who have started the bot (blocked if inactive),
    plus the demo operator."""
    world = sb.world
    if OPERATOR["id"] not in world.users:
        world.add_user(**OPERATOR)
    for row in people:
        if row["id"] in world.users:
            continue
        world.add_user(id=row["id"], first_name=row["first_name"], last_name=row["last_name"],
                       username=row["username"], language_code=row["language_code"],
                       started=True, blocked=not row["is_active"])


def reset_sqlite_file(path: Path) -> None:
    """Remove a SQLite database file and its WAL/SHM companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

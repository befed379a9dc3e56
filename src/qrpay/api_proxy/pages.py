"""The HTML api-proxy serves: the payer and restaurants pages (static shells) and the sign-in page.

The shells are plain files under ``static/``; the server fills in only the
language and the signed-in user, both already checked against a strict pattern.
Everything else on those pages is drawn by their scripts.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path
from urllib.parse import quote

from qrpay.api_proxy.service import DemoUser

STATIC_DIR = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    # The page's URL carries the order's hmac: never hand it to another site. (Not
    # no-referrer: that makes the browser send `Origin: null` with our own forms.)
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@cache
def _shell(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def shell(name: str, *, language: str | None, user_id: str | None) -> str:
    return (
        _shell(name)
        .replace("__LANG__", escape(language or ""))
        .replace("__USER__", escape(user_id or ""))
    )


LOGIN_TEXTS = {
    "ru": {
        "title": "Вход (для разработки)",
        "intro": "Выберите демо-пользователя. Это вход для разработки: без пароля.",
        "as": "Войти как {user}",
        "cards": "карт: {count}",
        "signed_in": "Вы вошли как {user}.",
        "logout": "Выйти",
        "back": "Вернуться",
    },
    "en": {
        "title": "Sign in (development)",
        "intro": "Pick a demo user. This is the development sign-in: no password.",
        "as": "Sign in as {user}",
        "cards": "{count} cards",
        "signed_in": "You are signed in as {user}.",
        "logout": "Sign out",
        "back": "Go back",
    },
}


def login_page(
    *, language: str | None, users: list[DemoUser], next_url: str, current_user: str | None
) -> str:
    lang = language or "ru"
    texts = LOGIN_TEXTS[lang]
    next_value = escape(next_url, quote=True)
    items = []
    for user in users:
        label = escape(texts["as"].format(user=user.user_id))
        note = escape(texts["cards"].format(count=user.cards))
        items.append(
            '<li><form method="post" action="/login">'
            f'<input type="hidden" name="user_id" value="{escape(user.user_id, quote=True)}">'
            f'<input type="hidden" name="next" value="{next_value}">'
            f'<button type="submit" class="button primary" data-user="{escape(user.user_id)}">'
            f'{label}</button> <span class="muted">{note}</span></form></li>'
        )
    signed_in = ""
    if current_user:
        signed_in = (
            f"<p>{escape(texts['signed_in'].format(user=current_user))}</p>"
            '<form method="post" action="/logout">'
            f'<input type="hidden" name="next" value="{escape("/login?next=" + quote(next_url), quote=True)}">'
            f'<button type="submit" class="button">{escape(texts["logout"])}</button></form>'
        )
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(texts["title"])} · qrpay</title>
<link rel="stylesheet" href="/go-pay/static/app.css">
</head>
<body>
<header class="topbar"><span class="brand">qrpay</span></header>
<main id="main" class="page">
<h1>{escape(texts["title"])}</h1>
<p class="muted">{escape(texts["intro"])}</p>
{signed_in}
<ul class="plain users">{"".join(items)}</ul>
<p><a href="{next_value}">{escape(texts["back"])}</a></p>
</main>
</body>
</html>
"""

/* qrpay pages: texts in Russian and English, the API wrapper, money, the account bar. */
(function () {
  'use strict';

  var TEXTS = {
    ru: {
      skip: 'К содержимому',
      account: 'Учётная запись',
      loading_title: 'Загружаем счёт…',
      bill_caption: 'Ваш счёт',
      item: 'Позиция',
      amount: 'Сумма',
      total: 'Итого',
      cashback_offer: 'Кэшбэк {amount} — {rate} от счёта',
      choose_card: 'Карта для оплаты',
      card_label: '{system} {mask}, до {expiry}',
      card_unavailable: 'недоступна',
      no_cards: 'Нет сохранённых карт. Оплатите счёт в ресторане.',
      choose_card_first: 'Выберите карту.',
      pay: 'Оплатить {amount}',
      paying: 'Отправляем…',
      signin_text: 'Войдите, чтобы оплатить счёт и получить кэшбэк.',
      signin: 'Войти и оплатить',
      waiting_title: 'Платёж обрабатывается',
      waiting_text: 'Не закрывайте страницу: это займёт несколько секунд.',
      paid_title: 'Оплачено',
      paid_total: 'Вы оплатили {amount} в «{restaurant}».',
      paid_cashback: 'Кэшбэк {amount} скоро придёт.',
      declined: 'Платёж не прошёл. Выберите другую карту или оплатите в ресторане.',
      bill_changed: 'Счёт изменился. Проверьте новую сумму и оплатите снова.',
      pay_failed: 'Не удалось оплатить: {message}',
      not_found_title: 'Заказ не найден',
      not_found_text: 'Ссылка неверна или устарела. Отсканируйте QR-код в счёте ещё раз.',
      closed_title: 'Заказ закрыт',
      closed_text: 'Этот заказ больше нельзя оплатить по QR-коду. Оплатите его в ресторане.',
      already_paid_title: 'Заказ уже оплачен',
      already_paid_text: 'Платить ещё раз не нужно.',
      refunded_text: 'Вам вернули {amount}.',
      offline_title: 'Нет соединения',
      offline_text: 'Не удалось связаться с сервером. Проверьте интернет и попробуйте ещё раз.',
      unavailable_title: 'Сервис недоступен',
      unavailable_text: 'Сервис временно недоступен. Попробуйте ещё раз через минуту.',
      retry: 'Попробовать снова',
      signed_in_as: 'Вы вошли как {user}',
      sign_out: 'Выйти',
      sign_in: 'Войти',
      restaurants_title: 'Рестораны с кэшбэком',
      zone_label: 'Город',
      zone_moscow: 'Москва',
      zone_spb: 'Санкт-Петербург',
      show: 'Показать',
      restaurants_loading: 'Загружаем рестораны…',
      restaurants_count: 'Ресторанов: {count}',
      not_available: 'Оплата по QR-коду пока недоступна для вас в этом городе.',
      restaurants_signin: 'Войдите, чтобы увидеть рестораны с кэшбэком.',
      no_restaurants: 'Здесь пока нет ресторанов с кэшбэком.',
      cashback_rate: 'кэшбэк {rate}',
      split_open: 'Разделить счёт',
      split_summary: 'Оплачено {paid} из {total}. Осталось {left}.',
      split_held: 'Оплачено {paid} из {total}, ещё {held} оплачивается. Осталось {left}.',
      split_left_after: 'За столом осталось оплатить {left}.',
      split_done: 'Счёт оплачен полностью.',
      way_legend: 'Сколько платите',
      way_rest: 'Всё, что осталось',
      way_equal: 'Поровну',
      way_items: 'Мои позиции',
      way_amount: 'Своя сумма',
      parts_label: 'Сколько человек делят счёт',
      items_legend: 'Что вы заказывали',
      item_taken_by: '{name}, {amount} — другой гость',
      amount_label: 'Сумма, не больше {left}',
      tip_legend: 'Чаевые',
      tip_none: 'Без чаевых',
      tip_other: 'Другая сумма',
      tip_amount_label: 'Сумма чаевых',
      your_share: 'Ваша доля',
      tip: 'Чаевые',
      share_cashback: 'Кэшбэк с вашей доли — до {amount}',
      choose_items_first: 'Отметьте свои позиции.',
      enter_amount_first: 'Введите сумму.',
      nothing_left_now: 'Оплачивать больше нечего: остаток оплачивают другие гости.',
      paid_share: 'Вы оплатили {amount} в «{restaurant}».',
      paid_tip: 'Чаевые {amount} — отдельно от счёта.',
      err_item_taken: 'Эту позицию уже оплачивает другой гость. Выберите другие.',
      err_share_price_changed: 'Пока вы выбирали, другой гость оплатил часть счёта. Ваша доля теперь {amount}: проверьте и оплатите снова.',
      err_amount_exceeds_left: 'Это больше, чем осталось оплатить ({left}).',
      err_nothing_left: 'Оплачивать больше нечего: счёт оплачен или оплачивается.',
      err_tip_not_offered: 'Такой процент чаевых здесь недоступен. Выберите другой.',
      err_invalid_tip: 'Неверная сумма чаевых: не больше вашей доли, не больше двух знаков после запятой.',
      err_invalid_amount: 'Неверная сумма: больше нуля, не больше двух знаков после запятой.',
      err_split_under_way: 'Гости делят этот счёт: выберите свою долю.',
      err_invalid_parts: 'Счёт делится на 2–50 частей.'
    },
    en: {
      skip: 'Skip to content',
      account: 'Account',
      loading_title: 'Loading the bill…',
      bill_caption: 'Your bill',
      item: 'Item',
      amount: 'Amount',
      total: 'Total',
      cashback_offer: 'Cashback {amount}: {rate} of the bill',
      choose_card: 'Card to pay with',
      card_label: '{system} {mask}, expires {expiry}',
      card_unavailable: 'unavailable',
      no_cards: 'No saved cards. Please pay at the restaurant.',
      choose_card_first: 'Choose a card.',
      pay: 'Pay {amount}',
      paying: 'Sending…',
      signin_text: 'Sign in to pay the bill and earn cashback.',
      signin: 'Sign in to pay',
      waiting_title: 'Processing the payment',
      waiting_text: 'Keep this page open: it takes a few seconds.',
      paid_title: 'Paid',
      paid_total: 'You paid {amount} at {restaurant}.',
      paid_cashback: 'Cashback of {amount} will arrive soon.',
      declined: 'The payment was declined. Choose another card or pay at the restaurant.',
      bill_changed: 'The bill has changed. Check the new total and pay again.',
      pay_failed: 'The payment failed: {message}',
      not_found_title: 'Order not found',
      not_found_text: 'The link is wrong or out of date. Scan the QR code on the bill again.',
      closed_title: 'The order is closed',
      closed_text: 'This order can no longer be paid by QR code. Please pay at the restaurant.',
      already_paid_title: 'The order is already paid',
      already_paid_text: 'There is nothing more to pay.',
      refunded_text: '{amount} was refunded to your card.',
      offline_title: 'No connection',
      offline_text: 'Could not reach the server. Check your connection and try again.',
      unavailable_title: 'Service unavailable',
      unavailable_text: 'The service is temporarily unavailable. Try again in a minute.',
      retry: 'Try again',
      signed_in_as: 'Signed in as {user}',
      sign_out: 'Sign out',
      sign_in: 'Sign in',
      restaurants_title: 'Restaurants with cashback',
      zone_label: 'City',
      zone_moscow: 'Moscow',
      zone_spb: 'Saint Petersburg',
      show: 'Show',
      restaurants_loading: 'Loading restaurants…',
      restaurants_count: '{count} restaurants',
      not_available: 'Paying by QR code is not available for you in this city yet.',
      restaurants_signin: 'Sign in to see restaurants with cashback.',
      no_restaurants: 'No restaurants with cashback here yet.',
      cashback_rate: '{rate} cashback',
      split_open: 'Split the bill',
      split_summary: 'Paid {paid} of {total}. Left to pay: {left}.',
      split_held: 'Paid {paid} of {total}, {held} being paid. Left to pay: {left}.',
      split_left_after: 'Still to pay at the table: {left}.',
      split_done: 'The bill is paid in full.',
      way_legend: 'How much you pay',
      way_rest: 'Everything left',
      way_equal: 'An equal share',
      way_items: 'My items',
      way_amount: 'An amount',
      parts_label: 'People sharing the bill',
      items_legend: 'What you had',
      item_taken_by: '{name}, {amount}: another guest',
      amount_label: 'Amount, up to {left}',
      tip_legend: 'Tip',
      tip_none: 'No tip',
      tip_other: 'Other amount',
      tip_amount_label: 'Tip amount',
      your_share: 'Your share',
      tip: 'Tip',
      share_cashback: 'Cashback on your share: up to {amount}',
      choose_items_first: 'Tick your items.',
      enter_amount_first: 'Enter an amount.',
      nothing_left_now: 'Nothing is left for you to pay: other guests are paying the rest.',
      paid_share: 'You paid {amount} at {restaurant}.',
      paid_tip: 'Tip {amount}, apart from the bill.',
      err_item_taken: 'Another guest has this item. Choose other items.',
      err_share_price_changed: 'Another guest paid meanwhile. Your share is now {amount}: check it and pay again.',
      err_amount_exceeds_left: 'That is more than the {left} left to pay.',
      err_nothing_left: 'Nothing is left to pay: the bill is paid or being paid.',
      err_tip_not_offered: 'That tip percentage is not offered here. Choose another.',
      err_invalid_tip: 'The tip is not valid: at most your share, with at most two decimals.',
      err_invalid_amount: 'The amount is not valid: above zero, with at most two decimals.',
      err_split_under_way: 'Guests are splitting this bill: choose your share.',
      err_invalid_parts: 'A bill splits into 2 to 50 shares.'
    }
  };

  function pickLanguage() {
    var given = (document.documentElement.getAttribute('lang') || '').toLowerCase();
    if (TEXTS[given]) return given;
    var wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ''];
    for (var i = 0; i < wanted.length; i++) {
      var primary = String(wanted[i]).toLowerCase().split('-')[0];
      if (TEXTS[primary]) return primary;
    }
    return 'ru';
  }

  var lang = pickLanguage();
  document.documentElement.setAttribute('lang', lang);

  function t(key, values) {
    var text = (TEXTS[lang] && TEXTS[lang][key]) || TEXTS.en[key] || key;
    return text.replace(/\{(\w+)\}/g, function (_m, name) {
      return values && values[name] !== undefined ? String(values[name]) : '';
    });
  }

  function translate(root) {
    var nodes = (root || document).querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = t(nodes[i].getAttribute('data-i18n'));
    var labelled = (root || document).querySelectorAll('[data-i18n-label]');
    for (var j = 0; j < labelled.length; j++) {
      labelled[j].setAttribute('aria-label', t(labelled[j].getAttribute('data-i18n-label')));
    }
  }

  /* One call to api-proxy. Resolves with {status, data, headers}; rejects when there is no answer.
     ``extra``: more request headers (a pay's X-Idempotency-Token); ``waitMs``: how long the
     server may hold the call on purpose (a long-poll), on top of the usual 15 s. */
  function api(method, url, body, extra, waitMs) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, 15000 + (waitMs || 0));
    var headers = { 'Accept': 'application/json', 'X-Request-Language': lang };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    Object.keys(extra || {}).forEach(function (name) { headers[name] = extra[name]; });
    return fetch(url, {
      method: method,
      credentials: 'same-origin',
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
      cache: 'no-store'
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (_e) { data = null; }
        return { status: response.status, data: data, headers: response.headers };
      });
    }).finally(function () { clearTimeout(timer); });
  }

  /* Amounts are decimal strings; Intl formats a string exactly (no float rounding). */
  function money(amount, currency) {
    var text = String(amount);
    // Kopecks only when there are any: "1200" -> 1 200 ₽, "620.5" -> 620,50 ₽.
    var fraction = /\.(\d*[1-9]\d*)$/.test(text);
    try {
      return new Intl.NumberFormat(lang === 'ru' ? 'ru-RU' : 'en-GB', {
        style: 'currency', currency: currency, currencyDisplay: 'narrowSymbol',
        minimumFractionDigits: fraction ? 2 : 0, maximumFractionDigits: 2
      }).format(text);
    } catch (_e) {
      return amount + ' ' + currency;
    }
  }

  var liveTimer = null;
  function announce(text) {
    var live = document.getElementById('live');
    if (!live) return;
    live.textContent = '';
    clearTimeout(liveTimer);
    // A fresh node change after a tick, so screen readers announce a repeated text too.
    liveTimer = setTimeout(function () { live.textContent = text; }, 50);
  }

  function here() { return location.pathname + location.search; }

  function loginUrl() { return '/login?next=' + encodeURIComponent(here()); }

  function renderAccount() {
    var nav = document.getElementById('account');
    if (!nav) return;
    nav.textContent = '';
    var user = document.body.getAttribute('data-user');
    if (user) {
      var who = document.createElement('span');
      who.className = 'who';
      who.textContent = t('signed_in_as', { user: user });
      var form = document.createElement('form');
      form.method = 'post';
      form.action = '/logout';
      var next = document.createElement('input');
      next.type = 'hidden';
      next.name = 'next';
      next.value = here();
      var button = document.createElement('button');
      button.type = 'submit';
      button.className = 'link-button';
      button.textContent = t('sign_out');
      form.appendChild(next);
      form.appendChild(button);
      nav.appendChild(who);
      nav.appendChild(form);
    } else {
      var link = document.createElement('a');
      link.href = loginUrl();
      link.textContent = t('sign_in');
      nav.appendChild(link);
    }
  }

  /* A new idempotency token: 18 random bytes in base64url (24 of [A-Za-z0-9_-]). Not
     crypto.randomUUID, which a page served over plain http (not localhost) lacks. */
  function newToken() {
    var bytes = new Uint8Array(18);
    window.crypto.getRandomValues(bytes);
    var text = '';
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  translate(document);
  renderAccount();

  window.qrpay = {
    lang: lang, t: t, api: api, money: money, announce: announce, translate: translate,
    loginUrl: loginUrl, newToken: newToken, user: document.body.getAttribute('data-user') || null
  };
})();

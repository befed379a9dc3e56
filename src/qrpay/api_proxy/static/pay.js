/* The payer page: bill -> pay -> waiting (polls, honouring X-Polling-Delay) -> paid / declined. */
(function () {
  'use strict';

  var q = window.qrpay;
  var t = q.t;
  var params = new URLSearchParams(location.search);
  var orderId = params.get('order_id');
  var hmac = params.get('hmac');
  var orderQuery = new URLSearchParams({ order_id: orderId || '', hmac: hmac || '' }).toString();

  var MIN_DELAY = 0.05, MAX_DELAY = 30, DEFAULT_DELAY = 1;
  var MAX_POLL_FAILURES = 3;

  var preorder = null;
  var inFlight = false;
  var lastCard = null;
  var pollTimer = null;
  var pollFailures = 0;
  var retryAction = null;

  var main = document.getElementById('main');
  var payForm = document.getElementById('pay-form');
  var payButton = document.getElementById('pay-button');
  var notice = document.getElementById('bill-notice');

  function $(id) { return document.getElementById(id); }

  function show(state, focusId) {
    var sections = main.querySelectorAll('section.state');
    for (var i = 0; i < sections.length; i++) {
      sections[i].hidden = sections[i].getAttribute('data-state') !== state;
    }
    main.setAttribute('data-state', state);
    var section = main.querySelector('section.state[data-state="' + state + '"]');
    var target = focusId ? $(focusId) : section.querySelector('h1');
    if (target) target.focus();
    // A focused notice is read out already (it is an alert); otherwise say the new state.
    var heading = section.querySelector('h1');
    if (!focusId && heading) q.announce(heading.textContent);
  }

  function stopPolling() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function pollingDelay(header) {
    var seconds = parseFloat(header);
    if (!isFinite(seconds)) return DEFAULT_DELAY;
    return Math.min(MAX_DELAY, Math.max(MIN_DELAY, seconds));
  }

  function money(amount) { return q.money(amount, preorder.bill.currency); }

  // --- states -------------------------------------------------------------------------------

  function offline(action, unavailable) {
    stopPolling();
    retryAction = action;
    $('offline-title').textContent = t(unavailable ? 'unavailable_title' : 'offline_title');
    $('offline-text').textContent = t(unavailable ? 'unavailable_text' : 'offline_text');
    show('offline');
  }

  function closed(code) {
    stopPolling();
    var paid = code === 'already_paid';
    $('closed-title').textContent = t(paid ? 'already_paid_title' : 'closed_title');
    $('closed-text').textContent = t(paid ? 'already_paid_text' : 'closed_text');
    main.setAttribute('data-reason', code);
    show('closed');
  }

  function notFound() {
    stopPolling();
    show('not-found');
  }

  function paid() {
    stopPolling();
    $('paid-total').textContent = t('paid_total', {
      amount: money(preorder.bill.amount), restaurant: preorder.restaurant.name
    });
    var cashback = preorder.cashback;
    $('paid-cashback').textContent = cashback && cashback.amount && cashback.amount !== '0'
      ? t('paid_cashback', { amount: q.money(cashback.amount, cashback.currency) })
      : '';
    show('paid');
  }

  function waiting() {
    pollFailures = 0;
    show('waiting');
    poll();
  }

  function setNotice(text) {
    notice.textContent = text || '';
    notice.hidden = !text;
  }

  function cardText(card) {
    var text = t('card_label', { system: (card.system || '').toUpperCase(), mask: card.mask, expiry: card.expiry });
    return card.available === false ? text + ' (' + t('card_unavailable') + ')' : text;
  }

  function renderCards() {
    var list = $('card-list');
    list.textContent = '';
    var cards = preorder.payment_methods || [];
    var usable = cards.filter(function (card) { return card.available !== false; });
    // After a decline, offer another card first.
    var preferred = usable.filter(function (card) { return card.id !== lastCard; })[0] || usable[0];
    cards.forEach(function (card) {
      var id = 'card-' + card.id.replace(/[^A-Za-z0-9_-]/g, '_');
      var row = document.createElement('div');
      row.className = 'card-option';
      var input = document.createElement('input');
      input.type = 'radio';
      input.name = 'card';
      input.id = id;
      input.value = card.id;
      input.disabled = card.available === false;
      input.checked = preferred !== undefined && card.id === preferred.id;
      var label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = cardText(card);
      row.appendChild(input);
      row.appendChild(label);
      list.appendChild(row);
    });
    $('cards').hidden = cards.length === 0;
    $('no-cards').hidden = usable.length > 0;
    payButton.hidden = usable.length === 0;
  }

  function resetPayButton() {
    inFlight = false;
    payButton.disabled = false;
    payButton.removeAttribute('aria-busy');
    payButton.textContent = t('pay', { amount: money(preorder.bill.amount) });
  }

  function renderBill(noticeText) {
    $('restaurant-name').textContent = preorder.restaurant.name;
    document.title = preorder.restaurant.name + ' · qrpay';
    var lines = $('bill-lines');
    lines.textContent = '';
    (preorder.bill.elements || []).forEach(function (element) {
      var row = document.createElement('tr');
      var name = document.createElement('td');
      name.textContent = element.name;
      var amount = document.createElement('td');
      amount.className = 'num';
      amount.textContent = money(element.amount);
      row.appendChild(name);
      row.appendChild(amount);
      lines.appendChild(row);
    });
    $('bill-total').textContent = money(preorder.bill.amount);
    var cashback = preorder.cashback;
    var offer = $('cashback-offer');
    offer.textContent = cashback && cashback.amount && cashback.amount !== '0'
      ? t('cashback_offer', { amount: q.money(cashback.amount, cashback.currency), rate: cashback.rate })
      : '';
    offer.hidden = !offer.textContent;
    setNotice(noticeText);
    if (q.user) {
      payForm.hidden = false;
      $('signin').hidden = true;
      renderCards();
      resetPayButton();
    } else {
      payForm.hidden = true;
      $('signin').hidden = false;
      $('signin-link').href = q.loginUrl();
    }
    show('bill', noticeText ? 'bill-notice' : null);
  }

  // --- calls --------------------------------------------------------------------------------

  function load(noticeText) {
    stopPolling();
    if (!orderId || !hmac) { notFound(); return; }
    show('loading');
    q.api('GET', '/4.0/payments/v1/preorder?service=restaurant&' + orderQuery).then(function (answer) {
      if (answer.status === 404) return notFound();
      if (answer.status >= 500) return offline(function () { load(noticeText); }, true);
      if (answer.status !== 200 || !answer.data) return offline(function () { load(noticeText); }, true);
      preorder = answer.data;
      if (preorder.status === 'PAYED') return closed('already_paid');
      if (preorder.status === 'CANCELED') return closed('order_closed');
      if (preorder.status === 'PAYMENT_IN_PROGRESS') return waiting();
      renderBill(noticeText);
    }, function () {
      offline(function () { load(noticeText); });
    });
  }

  function afterDeclined() {
    stopPolling();
    // Fresh bill and cards; the order may also have been closed meanwhile.
    q.api('GET', '/4.0/payments/v1/preorder?service=restaurant&' + orderQuery).then(function (answer) {
      if (answer.status === 404) return notFound();
      if (answer.status !== 200 || !answer.data) return offline(afterDeclined, answer.status >= 500);
      preorder = answer.data;
      if (preorder.status === 'PAYED') return paid();
      if (preorder.status === 'CANCELED') return closed('order_closed');
      renderBill(t('declined'));
      main.setAttribute('data-reason', 'declined');
    }, function () { offline(afterDeclined); });
  }

  function resumePolling() {
    pollFailures = 0;
    show('waiting');
    poll();
  }

  function pollFailed(unavailable) {
    pollFailures += 1;
    if (pollFailures >= MAX_POLL_FAILURES) return offline(resumePolling, unavailable);
    pollTimer = setTimeout(poll, 1000 * pollFailures);
  }

  function poll() {
    stopPolling();
    q.api('GET', '/4.0/payments/v1/orders?' + orderQuery).then(function (answer) {
      if (answer.status === 404) return notFound();
      if (answer.status !== 200 || !answer.data) return pollFailed(answer.status >= 500);
      pollFailures = 0;
      var status = answer.data.status;
      if (status === 'PAYED') return paid();
      if (status === 'DECLINED') return afterDeclined();
      pollTimer = setTimeout(poll, 1000 * pollingDelay(answer.headers.get('X-Polling-Delay')));
    }, function () { pollFailed(false); });
  }

  function selectedCard() {
    var checked = payForm.querySelector('input[name="card"]:checked');
    return checked ? checked.value : null;
  }

  payForm.addEventListener('submit', function (event) {
    event.preventDefault();
    if (inFlight) return;  // one pay request at a time, whatever the clicks
    var card = selectedCard();
    if (!card) { setNotice(t('choose_card_first')); notice.focus(); return; }
    inFlight = true;
    payButton.disabled = true;
    payButton.setAttribute('aria-busy', 'true');
    payButton.textContent = t('paying');
    main.removeAttribute('data-reason');
    q.api('POST', '/4.0/payments/v1/orders', {
      service: 'restaurant',
      order_id: orderId,
      hmac: hmac,
      payment_method: { type: 'card', id: card },
      amount: preorder.bill.amount,
      currency: preorder.bill.currency,
      bill_version: preorder.bill_version
    }).then(function (answer) {
      if (answer.status === 200) { lastCard = card; return waiting(); }
      resetPayButton();
      var code = answer.data && answer.data.code;
      if (answer.status === 401) { q.user = null; return renderBill(t('signin_text')); }
      if (answer.status === 404) return notFound();
      if (code === 'already_paid' || code === 'order_closed') return closed(code);
      if (code === 'bill_changed') return load(t('bill_changed'));
      if (answer.status >= 500) return offline(function () { load(); }, true);
      var message = (answer.data && answer.data.message) || String(answer.status);
      setNotice(t('pay_failed', { message: message }));
      notice.focus();
    }, function () {
      // No answer: the pay may or may not have arrived. Reloading shows which (it is idempotent).
      resetPayButton();
      offline(function () { load(); });
    });
  });

  $('retry').addEventListener('click', function () {
    if (retryAction) retryAction();
  });

  load();
})();

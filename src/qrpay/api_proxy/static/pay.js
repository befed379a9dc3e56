/* The payer page: bill -> pay -> waiting (a long-poll: the server answers once the status
   changes, or after LONG_POLL_MS; one that came back sooner than X-Polling-Delay is followed
   by that delay, as a polling client would) -> paid / declined.
   A split bill (issue 12): the bill shows what is paid and left (polled while the page is
   open); a guest pays everything left, an equal share, their items or an amount, plus a
   tip, as a share of its own. The whole-bill pay stays while no share is paid or under way,
   so a table that does not split pays exactly as before.
   One tap on "pay" is one payment (issue 18): the tap makes an idempotency token, sent as
   X-Idempotency-Token with its body. The pay (token, body, and the share's id once known) is
   kept in sessionStorage until the payment ends (PAYED, DECLINED, or refused): a reload, or
   "try again" after no answer, follows or re-sends that same pay, never a second one. */
(function () {
  'use strict';

  var q = window.qrpay;
  var t = q.t;
  var params = new URLSearchParams(location.search);
  var orderId = params.get('order_id');
  var hmac = params.get('hmac');
  var orderQuery = new URLSearchParams({ order_id: orderId || '', hmac: hmac || '' }).toString();

  var MIN_DELAY = 0.05, MAX_DELAY = 30, DEFAULT_DELAY = 1;
  var LONG_POLL_MS = 20000;
  var MAX_POLL_FAILURES = 3;
  var SPLIT_EVERY = 3000;  // ms between looks at what others paid, while the page is open
  var PARTS_KEY = 'qrpay.parts.' + (orderId || '');
  // The pay this tab made and has not seen end: a reload follows it instead of paying twice.
  var PAY_KEY = 'qrpay.pay.' + (orderId || '');
  var TOKEN_HEADER = 'X-Idempotency-Token';

  var preorder = null;
  var inFlight = false;
  var lastCard = null;
  var pollTimer = null;
  var pollFailures = 0;
  var retryAction = null;
  var statusUrl = null;      // what the waiting state polls: the order's or the share's status
  var split = null;          // the split view; null when payments-eda does not offer one
  var splitOpen = false;
  var splitTimer = null;
  var splitShown = '';       // the split view last drawn, to redraw only on a change
  var quote = null;          // {key, amount}: the price payments-eda quoted for the choice
  var quoteSeq = 0;
  var paidShare = null;      // {amount, tip} of the share this guest paid
  // {token, path, body, card, share: {amount, tip} | null, paymentId, shareId, resent}: the
  // unfinished pay (its ids once payments-eda, or api-proxy for it, answered).
  var currentPay = null;

  var main = document.getElementById('main');
  var payForm = document.getElementById('pay-form');
  var payButton = document.getElementById('pay-button');
  var notice = document.getElementById('bill-notice');
  var shareNotice = document.getElementById('share-notice');

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
    var refunded = $('closed-refunded');
    refunded.hidden = true;
    show('closed');
    // A paid order may have been refunded since (issue 19): the guest sees what came back.
    if (paid) {
      q.api('GET', '/4.0/payments/v1/orders?' + orderQuery).then(function (answer) {
        var amount = answer.status === 200 && answer.data ? answer.data.refunded : null;
        if (!amount) return;
        refunded.textContent = t('refunded_text', { amount: money(amount) });
        refunded.hidden = false;
      }, function () {});
    }
  }

  function notFound() {
    stopPolling();
    show('not-found');
  }

  function paid() {
    stopPolling();
    var cashback = preorder.cashback;
    var tip = $('paid-tip');
    if (paidShare) {
      $('paid-total').textContent = t('paid_share', {
        amount: money(paidShare.amount), restaurant: preorder.restaurant.name
      });
      tip.textContent = cents(paidShare.tip) > 0 ? t('paid_tip', { amount: money(paidShare.tip) }) : '';
      $('paid-cashback').textContent = shareCashbackText(paidShare.amount);
    } else {
      $('paid-total').textContent = t('paid_total', {
        amount: money(preorder.bill.amount), restaurant: preorder.restaurant.name
      });
      tip.textContent = '';
      $('paid-cashback').textContent = cashback && cashback.amount && cashback.amount !== '0'
        ? t('paid_cashback', { amount: q.money(cashback.amount, cashback.currency) })
        : '';
    }
    tip.hidden = !tip.textContent;
    endPay();
    show('paid');
    if (paidShare) watchSplit(0);
  }

  function waiting(url) {
    statusUrl = url || '/4.0/payments/v1/orders?' + orderQuery;
    pollFailures = 0;
    stopSplit();
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
    var amount = toPay();
    payButton.textContent = t('pay', { amount: amount === null ? '…' : money(amount) });
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
    setShareNotice('');
    renderSummary();
    if (q.user) {
      payForm.hidden = false;
      $('signin').hidden = true;
      renderCards();
      renderSplit();
      resetPayButton();
    } else {
      payForm.hidden = true;
      $('signin').hidden = false;
      $('signin-link').href = q.loginUrl();
    }
    show('bill', noticeText ? 'bill-notice' : null);
    watchSplit();
  }

  // --- a split bill -------------------------------------------------------------------------

  // A refusal of a share, in the page's words (the codes are payments-eda's).
  var SHARE_ERRORS = {
    item_taken: 'err_item_taken',
    unknown_item: 'choose_items_first',
    share_price_changed: 'err_share_price_changed',
    amount_exceeds_left: 'err_amount_exceeds_left',
    nothing_left: 'err_nothing_left',
    tip_not_offered: 'err_tip_not_offered',
    invalid_tip: 'err_invalid_tip',
    invalid_amount: 'err_invalid_amount',
    invalid_share: 'err_invalid_parts',
    invalid_request: 'err_invalid_amount',
    split_under_way: 'err_split_under_way'
  };

  /* Amounts as whole minor units (kopecks), so sums and percentages are exact. */
  function cents(text) {
    var m = /^\s*(-?)(\d+)(?:[.,](\d{1,2}))?\s*$/.exec(String(text));
    if (!m) return NaN;
    var value = parseInt(m[2], 10) * 100 + parseInt(((m[3] || '') + '00').slice(0, 2), 10);
    return m[1] ? -value : value;
  }

  function fromCents(value) {
    var abs = Math.abs(value);
    var minor = abs % 100;
    return (value < 0 ? '-' : '') + Math.floor(abs / 100) + '.' + (minor < 10 ? '0' : '') + minor;
  }

  function setShareNotice(text) {
    shareNotice.textContent = text || '';
    shareNotice.hidden = !text;
  }

  function checkedValue(name) {
    var checked = payForm.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
  }

  function reserving() { return split !== null && split.shares.length > 0; }

  /* Today's whole-bill pay, for as long as nobody pays a share and this guest splits nothing. */
  function wholeBill() {
    return !reserving() && checkedValue('way') === 'rest' && checkedValue('tip') !== 'other' &&
      (checkedValue('tip') || 'none') === 'none';
  }

  function selectedTip() {
    var tip = checkedValue('tip') || 'none';
    if (tip === 'none') return {};
    if (tip !== 'other') return { percent: parseInt(tip, 10) };
    var text = $('tip-amount').value.trim().replace(',', '.');
    return text ? { amount: text } : {};
  }

  /* The tip on a price, in kopecks: a percentage rounded half up, as payments-eda does. */
  function tipFor(price) {
    var tip = selectedTip();
    if (tip.percent !== undefined) return Math.floor((cents(price) * tip.percent + 50) / 100);
    if (tip.amount !== undefined) return cents(tip.amount) > 0 ? cents(tip.amount) : 0;
    return 0;
  }

  function shareChoice() {
    var way = checkedValue('way') || 'rest';
    if (way === 'equal') {
      var parts = parseInt($('parts').value, 10);
      return parts >= 2 && parts <= 50 ? { way: way, parts: parts } : { error: 'err_invalid_parts' };
    }
    if (way === 'items') {
      var items = [];
      var boxes = $('item-list').querySelectorAll('input:checked:enabled');
      for (var i = 0; i < boxes.length; i++) items.push(parseInt(boxes[i].value, 10));
      return items.length ? { way: way, items: items } : { error: 'choose_items_first' };
    }
    if (way === 'amount') {
      var text = $('share-amount').value.trim();
      if (!text) return { error: 'enter_amount_first' };
      var amount = cents(text);
      return amount > 0 ? { way: way, amount: fromCents(amount) } : { error: 'err_invalid_amount' };
    }
    return { way: 'rest' };
  }

  function keyOf(choice) { return JSON.stringify(choice); }

  /* The share's price as quoted, or null while there is none for the current choice. */
  function sharePrice() {
    if (wholeBill()) return preorder.bill.amount;
    return quote && quote.key === keyOf(shareChoice()) ? quote.amount : null;
  }

  function toPay() {
    var price = sharePrice();
    return price === null ? null : fromCents(cents(price) + tipFor(price));
  }

  /* An upper bound: the rate on the share, rounded down like the whole bill's cashback, never
     above the whole bill's (the order's cap is shared by its guests, first paid first). */
  function shareCashbackText(amount) {
    var cashback = preorder.cashback;
    if (!cashback || !cashback.amount || !(cents(cashback.amount) > 0)) return '';
    var rate = Math.round(parseFloat(cashback.rate) * 100);  // "30%" -> 3000 hundredths
    if (!(rate > 0)) return '';
    var unit = /[.,]\d*[1-9]/.test(cashback.amount) ? 1 : 100;
    var earned = Math.floor((cents(amount) * rate) / (10000 * unit)) * unit;
    earned = Math.min(earned, cents(cashback.amount));
    return earned > 0 ? t('share_cashback', { amount: q.money(fromCents(earned), cashback.currency) }) : '';
  }

  function updatePrice() {
    var price = sharePrice();
    $('share-price').textContent = price === null ? '—' : money(price);
    var tip = price === null ? 0 : tipFor(price);
    $('tip-price').textContent = money(fromCents(tip));
    $('tip-line').hidden = tip <= 0;
    $('share-cashback').textContent = price === null ? '' : shareCashbackText(price);
    if (!inFlight) resetPayButton();
  }

  function shareError(code, shown) {
    var key = SHARE_ERRORS[code];
    if (code === 'share_price_changed') {
      // Quote again and show the new price; the guest decides to pay it.
      requote(true, function () {
        setShareNotice(t(key, { amount: money(toPay() || '0') }));
        shareNotice.focus();
      });
      return;
    }
    setShareNotice(t(key, { left: split ? money(split.left) : '' }));
    if (!shown) shareNotice.focus();
  }

  /* Ask payments-eda what the chosen share costs now (unless that is known already). */
  function requote(force, after) {
    var choice = shareChoice();
    if (wholeBill() || choice.error || (!force && quote && quote.key === keyOf(choice))) {
      updatePrice();
      if (after) after();
      return;
    }
    var seq = ++quoteSeq;
    var query = new URLSearchParams({ order_id: orderId, hmac: hmac, way: choice.way });
    if (choice.parts) query.set('parts', String(choice.parts));
    if (choice.amount) query.set('amount', choice.amount);
    (choice.items || []).forEach(function (item) { query.append('items', String(item)); });
    q.api('GET', '/4.0/payments/v1/orders/share/quote?' + query.toString()).then(function (answer) {
      if (seq !== quoteSeq) return;  // a later choice was quoted meanwhile
      if (answer.status === 200 && answer.data) {
        quote = { key: keyOf(choice), amount: answer.data.amount };
        updatePrice();
        if (after) after();
        return;
      }
      quote = null;
      updatePrice();
      var code = answer.data && answer.data.code;
      if (SHARE_ERRORS[code]) shareError(code, true);
    }, function () {
      if (seq === quoteSeq) { quote = null; updatePrice(); }
    });
  }

  function shareStatusUrl(shareId) {
    var query = new URLSearchParams({ order_id: orderId, hmac: hmac, share_id: shareId });
    return '/4.0/payments/v1/orders/share?' + query.toString();
  }

  // --- the unfinished pay --------------------------------------------------------------------

  function keepPay(pay) {
    currentPay = pay;
    try {
      if (pay) window.sessionStorage.setItem(PAY_KEY, JSON.stringify(pay));
      else window.sessionStorage.removeItem(PAY_KEY);
    } catch (_e) { /* no storage: the pay is kept for this page's life only */ }
  }

  /* The payment ended (or was refused, so nothing was made): the next tap is a new payment. */
  function endPay() { keepPay(null); }

  function storedPay() {
    if (currentPay) return currentPay;
    try {
      var pay = JSON.parse(window.sessionStorage.getItem(PAY_KEY) || 'null');
      return pay && pay.token && pay.path && pay.body ? pay : null;
    } catch (_e) { return null; }
  }

  /* A reload (or "try again") with a pay unfinished: follow it where its id is known, else
     send it again with its token, which names the same payment. */
  function resumePay(pay) {
    currentPay = pay;
    paidShare = pay.share;
    if (pay.shareId) return waiting(shareStatusUrl(pay.shareId));
    if (!pay.share && preorder.status === 'PAYMENT_IN_PROGRESS') return waiting();
    show('waiting');
    sendPay(pay);
  }

  function fetchSplit() {
    return q.api('GET', '/4.0/payments/v1/orders/split?' + orderQuery).then(function (answer) {
      return answer.status === 200 && answer.data ? answer.data : null;
    }, function () { return null; });
  }

  // The preorder's answer and the split view (fetchSplit), asked at once.
  function fetchBill() {
    return Promise.all([
      q.api('GET', '/4.0/payments/v1/preorder?service=restaurant&' + orderQuery),
      fetchSplit()
    ]);
  }

  function refreshSplit() {
    return fetchSplit().then(function (view) {
      if (view) split = view;
      renderSummary();
      if (q.user) renderSplit();
    });
  }

  function stopSplit() {
    if (splitTimer !== null) clearTimeout(splitTimer);
    splitTimer = null;
  }

  /* While the bill (or this guest's paid share) is on screen, look at what the others paid. */
  function watchSplit(delay) {
    stopSplit();
    if (split === null && paidShare === null) return;  // no split bills here
    splitTimer = setTimeout(function () {
      var on = main.getAttribute('data-state');
      if (on !== 'bill' && on !== 'paid') return;
      fetchSplit().then(function (view) {
        var now = main.getAttribute('data-state');
        if (view && now === 'bill' && !inFlight) {
          if (view.status === 'PAYED') { split = view; return closed('already_paid'); }
          var seen = JSON.stringify(view);
          if (seen !== splitShown) {
            split = view;
            renderSummary();
            if (q.user) renderSplit();
          }
        }
        if (view && now === 'paid' && paidShare) renderLeftAfter(view);
        if (now === 'bill' || now === 'paid') watchSplit();
      });
    }, delay === undefined ? SPLIT_EVERY : delay);
  }

  function renderLeftAfter(view) {
    var left = $('paid-left');
    left.textContent = cents(view.left) > 0 || cents(view.held) > 0
      ? t('split_left_after', { left: money(fromCents(cents(view.left) + cents(view.held))) })
      : t('split_done');
    left.hidden = false;
  }

  function renderSummary() {
    var summary = $('split-summary');
    if (!split || (cents(split.paid) <= 0 && cents(split.held) <= 0)) {
      summary.hidden = true;
      return;
    }
    var values = {
      paid: money(split.paid), total: money(split.total), held: money(split.held), left: money(split.left)
    };
    summary.textContent = t(cents(split.held) > 0 ? 'split_held' : 'split_summary', values);
    summary.hidden = false;
  }

  function renderItems() {
    var list = $('item-list');
    var checked = {};
    var boxes = list.querySelectorAll('input:checked');
    for (var i = 0; i < boxes.length; i++) checked[boxes[i].value] = true;
    var taken = {};
    split.taken_items.forEach(function (item) { taken[item] = true; });
    list.textContent = '';
    (preorder.bill.elements || []).forEach(function (element, index) {
      if (!(cents(element.amount) > 0)) return;  // a discount line is nobody's to pay
      var row = document.createElement('div');
      row.className = 'choice';
      var input = document.createElement('input');
      input.type = 'checkbox';
      input.id = 'item-' + index;
      input.value = String(index);
      input.disabled = !!taken[index];
      input.checked = !taken[index] && !!checked[index];
      var label = document.createElement('label');
      label.htmlFor = input.id;
      label.textContent = taken[index]
        ? t('item_taken_by', { name: element.name, amount: money(element.amount) })
        : element.name + ', ' + money(element.amount);
      row.appendChild(input);
      row.appendChild(label);
      list.appendChild(row);
    });
  }

  function renderTips() {
    var list = $('tip-list');
    var wanted = ['none'].concat(split.tip_percents.map(String), ['other']);
    if (list.getAttribute('data-tips') === wanted.join(' ')) return;
    list.setAttribute('data-tips', wanted.join(' '));
    list.textContent = '';
    wanted.forEach(function (value) {
      var row = document.createElement('div');
      row.className = 'choice';
      var input = document.createElement('input');
      input.type = 'radio';
      input.name = 'tip';
      input.id = 'tip-' + value;
      input.value = value;
      input.checked = value === 'none';
      var label = document.createElement('label');
      label.htmlFor = input.id;
      label.textContent = value === 'none' ? t('tip_none') : value === 'other' ? t('tip_other') : value + '%';
      row.appendChild(input);
      row.appendChild(label);
      list.appendChild(row);
    });
  }

  function showFields() {
    var way = checkedValue('way');
    $('parts-field').hidden = way !== 'equal';
    $('items-field').hidden = way !== 'items';
    $('amount-field').hidden = way !== 'amount';
    $('tip-amount-field').hidden = checkedValue('tip') !== 'other';
  }

  function usableCards() {
    return (preorder.payment_methods || []).some(function (card) { return card.available !== false; });
  }

  function renderSplit() {
    var open = $('split-open');
    if (!split) {
      $('split').hidden = true;
      open.hidden = true;
      return;
    }
    splitShown = JSON.stringify(split);
    if (reserving()) splitOpen = true;
    $('split').hidden = !splitOpen;
    open.hidden = splitOpen || !usableCards();
    open.setAttribute('aria-expanded', splitOpen ? 'true' : 'false');
    renderItems();
    renderTips();
    $('share-amount-label').textContent = t('amount_label', { left: money(split.left) });
    showFields();
    var nothing = !(cents(split.left) > 0);
    payButton.hidden = nothing || !usableCards();
    if (nothing) setShareNotice(t('nothing_left_now'));
    else if (shareNotice.textContent === t('nothing_left_now')) setShareNotice('');
    if (splitOpen && !nothing) requote(true); else updatePrice();
  }

  try {
    var remembered = parseInt(window.localStorage.getItem(PARTS_KEY), 10);
    if (remembered >= 2 && remembered <= 50) $('parts').value = String(remembered);
  } catch (_e) { /* no storage (private mode): start from 2 */ }

  $('split-open').addEventListener('click', function () {
    splitOpen = true;
    renderSplit();
    var way = payForm.querySelector('input[name="way"]:checked');
    if (way) way.focus();
  });
  /* The guest changed their choice: what the page said of the last one no longer applies. */
  function choiceChanged() {
    if (shareNotice.textContent !== t('nothing_left_now')) setShareNotice('');
    showFields();
    requote();
  }

  $('ways').addEventListener('change', choiceChanged);
  $('parts').addEventListener('input', function () {
    try { window.localStorage.setItem(PARTS_KEY, $('parts').value); } catch (_e) { /* no storage */ }
    choiceChanged();
  });
  $('item-list').addEventListener('change', choiceChanged);
  $('share-amount').addEventListener('input', choiceChanged);
  $('tip-list').addEventListener('change', choiceChanged);
  $('tip-amount').addEventListener('input', choiceChanged);

  // --- calls --------------------------------------------------------------------------------

  function load(noticeText) {
    stopPolling();
    stopSplit();
    if (!orderId || !hmac) { notFound(); return; }
    show('loading');
    fetchBill().then(function (answers) {
      var answer = answers[0];
      if (answer.status === 404) return notFound();
      if (answer.status >= 500) return offline(function () { load(noticeText); }, true);
      if (answer.status !== 200 || !answer.data) return offline(function () { load(noticeText); }, true);
      preorder = answer.data;
      split = answers[1];
      var pending = storedPay();
      if (preorder.status === 'CANCELED') { endPay(); return closed('order_closed'); }
      if (pending) return resumePay(pending);
      if (preorder.status === 'PAYED') return closed('already_paid');
      if (preorder.status === 'PAYMENT_IN_PROGRESS') return waiting();
      renderBill(noticeText);
    }, function () {
      offline(function () { load(noticeText); });
    });
  }

  function afterDeclined() {
    stopPolling();
    var share = paidShare !== null;
    paidShare = null;
    endPay();
    // Fresh bill and cards; the order may also have been closed (or paid by others) meanwhile.
    fetchBill().then(function (answers) {
      var answer = answers[0];
      if (answer.status === 404) return notFound();
      if (answer.status !== 200 || !answer.data) return offline(afterDeclined, answer.status >= 500);
      preorder = answer.data;
      split = answers[1];
      if (preorder.status === 'PAYED') return share ? closed('already_paid') : paid();
      if (preorder.status === 'CANCELED') return closed('order_closed');
      quote = null;
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
    var started = Date.now();
    var url = statusUrl + '&wait_ms=' + LONG_POLL_MS;
    q.api('GET', url, undefined, undefined, LONG_POLL_MS).then(function (answer) {
      if (answer.status === 404 && currentPay && currentPay.shareId) return payNotFound();
      if (answer.status === 404) return notFound();
      if (answer.status !== 200 || !answer.data) return pollFailed(answer.status >= 500);
      pollFailures = 0;
      // The order's status names another payment (or none) than the one this page made.
      var named = answer.data.payment_id;
      if (currentPay && currentPay.paymentId && named !== undefined && named !== currentPay.paymentId) {
        return payNotFound();
      }
      var status = answer.data.status;
      if (status === 'PAYED') return paid();
      if (status === 'DECLINED') return afterDeclined();
      // Held by the server at least X-Polling-Delay: ask again at once; answered sooner (a
      // server that does not wait, or a busy one), wait that delay as a polling client does.
      var delay = 1000 * pollingDelay(answer.headers.get('X-Polling-Delay'));
      pollTimer = setTimeout(poll, Date.now() - started >= delay ? 0 : delay);
    }, function () { pollFailed(false); });
  }

  /* payments-eda does not know the pay this page follows: it never arrived (api-proxy lost
     its answer and said WAITING). Send it once more with its token (never a second payment);
     still unknown after that, the guest starts over. */
  function payNotFound() {
    if (!currentPay.resent) {
      currentPay.resent = true;
      currentPay.shareId = null;
      currentPay.paymentId = null;
      return resumePay(currentPay);
    }
    paidShare = null;
    endPay();
    return load();
  }

  function selectedCard() {
    var checked = payForm.querySelector('input[name="card"]:checked');
    return checked ? checked.value : null;
  }

  function startPaying() {
    inFlight = true;
    payButton.disabled = true;
    payButton.setAttribute('aria-busy', 'true');
    payButton.textContent = t('paying');
    main.removeAttribute('data-reason');
    setShareNotice('');
  }

  /* What every refusal of a pay has in common; false when the caller has its own words. */
  function refused(answer) {
    var code = answer.data && answer.data.code;
    if (answer.status === 401) { q.user = null; renderBill(t('signin_text')); return true; }
    if (answer.status === 404) { notFound(); return true; }
    if (code === 'already_paid' || code === 'order_closed') { closed(code); return true; }
    if (code === 'bill_changed') { load(t('bill_changed')); return true; }
    if (answer.status >= 500) { offline(function () { load(); }, true); return true; }
    return false;
  }

  function payFailed(answer) {
    var message = (answer.data && answer.data.message) || String(answer.status);
    setNotice(t('pay_failed', { message: message }));
    notice.focus();
  }

  function noAnswer() {
    // No answer: the pay may or may not have arrived. "Try again" follows it or sends it again
    // with the same token, which names the same payment.
    resetPayButton();
    offline(function () { load(); });
  }

  /* Send a pay (a new one, or the unfinished one again: same token, same body). */
  function sendPay(pay) {
    keepPay(pay);
    startPaying();
    var headers = {};
    headers[TOKEN_HEADER] = pay.token;
    q.api('POST', '/4.0/payments/v1/' + pay.path, pay.body, headers).then(function (answer) {
      var data = answer.data;
      if (answer.status === 200 && data && (!pay.share || data.share_id)) {
        lastCard = pay.card;
        paidShare = pay.share;
        pay.paymentId = data.payment_id || null;
        pay.shareId = data.share_id || null;
        keepPay(pay);
        if (!pay.share) return waiting();
        return waiting(shareStatusUrl(data.share_id));
      }
      resetPayButton();
      // api-proxy answers a pay it may have sent 200 WAITING; a 5xx left nothing behind there,
      // but a proxy on the way could say 5xx too: keep the token, "try again" re-sends it.
      if (answer.status >= 500) return offline(function () { load(); }, true);
      endPay();  // refused: nothing was made, the next tap is a new payment
      if (main.getAttribute('data-state') !== 'bill') renderBill();
      if (refused(answer)) return;
      var code = data && data.code;
      if (!pay.share && code === 'split_under_way') {
        // Another guest began a share meanwhile: the rest is a share too.
        return refreshSplit().then(function () { shareError('split_under_way'); });
      }
      if (pay.share && SHARE_ERRORS[code]) return refreshSplit().then(function () { shareError(code); });
      payFailed(answer);
    }, noAnswer);
  }

  function newPay(path, body, card, share) {
    return {
      token: q.newToken(), path: path, body: body, card: card, share: share,
      paymentId: null, shareId: null, resent: false
    };
  }

  function payWholeBill(card) {
    sendPay(newPay('orders', {
      service: 'restaurant',
      order_id: orderId,
      hmac: hmac,
      payment_method: { type: 'card', id: card },
      amount: preorder.bill.amount,
      currency: preorder.bill.currency,
      bill_version: preorder.bill_version
    }, card, null));
  }

  function payShare(card, choice) {
    var price = quote.amount;
    var tip = tipFor(price);
    var body = {
      service: 'restaurant',
      order_id: orderId,
      hmac: hmac,
      payment_method: { type: 'card', id: card },
      amount: price,
      currency: preorder.bill.currency,
      bill_version: preorder.bill_version,
      share: choice
    };
    var tipChoice = selectedTip();
    if (tipChoice.percent !== undefined) body.tip_percent = tipChoice.percent;
    if (tipChoice.amount !== undefined) body.tip = tipChoice.amount;
    sendPay(newPay('orders/share', body, card, { amount: price, tip: fromCents(tip) }));
  }

  payForm.addEventListener('submit', function (event) {
    event.preventDefault();
    if (inFlight) return;  // one pay request at a time, whatever the clicks
    // A pay not seen to end is tapped again: the same pay, with its token (never a second).
    if (currentPay) return sendPay(currentPay);
    var card = selectedCard();
    if (!card) { setNotice(t('choose_card_first')); notice.focus(); return; }
    if (wholeBill()) return payWholeBill(card);
    var choice = shareChoice();
    if (choice.error) { setShareNotice(t(choice.error)); shareNotice.focus(); return; }
    // Pay only the price the guest sees: a stale one is quoted again first.
    if (!quote || quote.key !== keyOf(choice)) { requote(); return; }
    payShare(card, choice);
  });

  $('retry').addEventListener('click', function () {
    if (retryAction) retryAction();
  });

  load();
})();

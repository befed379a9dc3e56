/* Restaurants with cashback in a zone, shown only where /availability says the feature is on. */
(function () {
  'use strict';

  var q = window.qrpay;
  var t = q.t;
  var zone = new URLSearchParams(location.search).get('zone') || 'moscow';
  var select = document.getElementById('zone');
  var status = document.getElementById('restaurants-status');
  var list = document.getElementById('restaurant-list');

  if (!select.querySelector('option[value="' + CSS.escape(zone) + '"]')) {
    var extra = document.createElement('option');
    extra.value = zone;
    extra.textContent = zone;
    select.appendChild(extra);
  }
  select.value = zone;

  function say(text) { status.textContent = text; }

  function failed(unavailable) {
    say(t(unavailable ? 'unavailable_text' : 'offline_text'));
    document.getElementById('restaurants-retry').hidden = false;
  }

  function render(restaurants) {
    list.textContent = '';
    restaurants.forEach(function (restaurant) {
      var item = document.createElement('li');
      item.className = 'restaurant';
      var name = document.createElement('h2');
      name.textContent = restaurant.name;
      var rate = document.createElement('p');
      rate.className = 'cashback-offer';
      rate.textContent = t('cashback_rate', { rate: restaurant.cashback });
      item.appendChild(name);
      item.appendChild(rate);
      if (restaurant.address) {
        var address = document.createElement('p');
        address.className = 'muted';
        address.textContent = restaurant.address;
        item.appendChild(address);
      }
      list.appendChild(item);
    });
    say(restaurants.length ? t('restaurants_count', { count: restaurants.length }) : t('no_restaurants'));
  }

  function load() {
    document.getElementById('restaurants-retry').hidden = true;
    list.textContent = '';
    if (!q.user) {
      say(t('restaurants_signin'));
      var signin = document.getElementById('restaurants-signin');
      document.getElementById('restaurants-signin-link').href = q.loginUrl();
      signin.hidden = false;
      return;
    }
    say(t('restaurants_loading'));
    var query = '?nearest_zone=' + encodeURIComponent(zone);
    q.api('GET', '/4.0/go-pay/v1/availability' + query).then(function (answer) {
      if (answer.status !== 200 || !answer.data) return failed(answer.status >= 500);
      if (!answer.data.is_available) return say(t('not_available'));
      return q.api('GET', '/4.0/go-pay/v1/restaurants' + query).then(function (listed) {
        if (listed.status !== 200 || !listed.data) return failed(listed.status >= 500);
        render(listed.data.restaurants || []);
      });
    }).catch(function () { failed(false); });
  }

  document.getElementById('retry').addEventListener('click', load);
  load();
})();

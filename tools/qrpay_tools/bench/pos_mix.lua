-- The POS mix for wrk: 95% POST /orders/list with 1-5 known ids, 5% POST /orders
-- with a new internal order id each time (a real creation, not a replay).
local ids = {}
local counter = 0
local prefix = ""
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = os.getenv("QRPAY_BENCH_KEY")}

function setup(thread)
  thread:set("tid", tostring(math.random(1, 1000000000)))
end

function init(args)
  prefix = "bench-" .. tid .. "-" .. tostring(os.time()) .. "-"
  for line in io.lines(os.getenv("QRPAY_BENCH_IDS")) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tid))
end

function request()
  counter = counter + 1
  if math.random() < 0.05 then
    local body = string.format(
      '{"client_id":"rest-1","internal_order_id":"%s%d","bill":{"currency":"RUB","amount":"1500.00",' ..
      '"elements":[{"name":"Borscht","amount":"700.00"},{"name":"Pelmeni","amount":"800.00"}]}}',
      prefix, counter)
    return wrk.format("POST", "/orders", headers, body)
  end
  local parts = {}
  for i = 1, math.random(1, 5) do parts[i] = '"' .. ids[math.random(#ids)] .. '"' end
  local body = '{"client_id":"rest-1","orders":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/orders/list", headers, body)
end

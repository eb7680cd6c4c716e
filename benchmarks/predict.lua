-- wrk script for bench_predict.py: POST a fixed JSON body with a unique X-Request-ID.
--
--   wrk -t2 -c32 -d12s --latency -s predict.lua http://127.0.0.1:PORT/v1/models/churn/predict \
--       -- BODY_FILE RUN_PREFIX
--
-- Every request gets its own id (RUN_PREFIX-THREAD-COUNTER), so with durable
-- logging on each request is a new request that is committed, never an
-- idempotent replay of a stored response. The same script drives the
-- logging-off runs, so both sides parse the same headers and body.

local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_id", thread_count)
end

function init(args)
   local body_file = args[1]
   prefix = args[2] or "bench"
   local f = assert(io.open(body_file, "rb"))
   body = f:read("*a")
   f:close()
   counter = 0
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   wrk.headers["X-Request-ID"] = prefix .. "-" .. thread_id .. "-" .. counter
   return wrk.format(nil, nil, nil, body)
end

-- One machine-readable line for bench_predict.py (latencies in microseconds).
function done(summary, latency, requests)
   io.write(string.format(
      "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"err_connect\": %d, \"err_read\": %d, \"err_write\": %d, \"err_status\": %d, \"err_timeout\": %d, " ..
      "\"lat_mean_us\": %.1f, \"lat_max_us\": %d, \"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"p999_us\": %d}\n",
      summary.requests, summary.duration, summary.bytes,
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
      latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end

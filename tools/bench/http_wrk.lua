-- wrk script of the HTTP benchmark (tools/bench/http_bench.py):
--   wrk ... -s http_wrk.lua URL -- DEPTH
-- DEPTH > 1 sends DEPTH requests at once on each connection (HTTP/1.1
-- pipelining; wrk counts every response); 1, or none, is wrk's ordinary
-- static request.  done() prints one JSON line with the run's totals and
-- latency percentiles (microseconds) for the benchmark to read.

init = function(args)
   local depth = tonumber(args[1]) or 1
   if depth > 1 then
      local one = wrk.format()
      local many = {}
      for i = 1, depth do
         many[i] = one
      end
      local batch = table.concat(many)
      request = function()
         return batch
      end
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
      '"status_errors": %d, "timeouts": %d, ' ..
      '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50.0), latency:percentile(99.0), latency.max))
end

-- GET with `Authorization: Bearer <token>`, cycling through the tokens in the file given as
-- the first script argument (one JWT per line): every request uses the next user's session.
-- The same request stream is sent to every contender (a-d ignore the header), so the
-- client's own cost is identical for all of them.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local reqs, n, i = {}, 0, 0

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then
         n = n + 1
         -- Formatted once here rather than per request: wrk shares CPU 0 with the upstream,
         -- so per-request Lua work would eat into what the contenders can show.
         reqs[n] = wrk.format(nil, nil, {["Authorization"] = "Bearer " .. line})
      end
   end
   assert(n > 0, "no tokens in " .. tostring(args[1]))
   i = math.random(n) - 1
end

function request()
   i = i % n + 1
   return reqs[i]
end

-- POST /auth/login with JSON credentials; script arguments: username password.
-- Every successful request creates a new session on the gateway.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

function init(args)
   wrk.method = "POST"
   wrk.body = string.format('{"username":"%s","password":"%s"}', args[1], args[2])
   wrk.headers["Content-Type"] = "application/json"
end
